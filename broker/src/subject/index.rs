//! The subject index: which subscriptions does a published subject reach.
//!
//! Contract:
//! - A token trie keyed by subscription subject. Each level keeps literal tokens in a hash map
//!   and the `*` and `>` subscriptions in dedicated slots, so a match walks one path per
//!   wildcard branch instead of scanning subscriptions.
//! - Values are stored as a multiset: plain subscriptions apart from queue subscriptions, and
//!   queue members grouped by queue group name. [`SubjectIndex::remove`] removes one occurrence
//!   (compared with `PartialEq`, e.g. an `Arc` newtype comparing by pointer) and prunes trie
//!   nodes left empty.
//! - [`SubjectIndex::matches`] takes `&self` and is meant to run on many threads at once behind
//!   the account's read lock. Its results are shared `Arc`s from a bounded cache: a hit costs a
//!   shard read lock and a reference count, a miss allocates the result and the cache key.
//! - Mutation takes `&mut self`, so the trie and the cache never change under a running match.
//!   Every insert and remove patches each cached result its subject matches, keeping the cache
//!   exact, and bumps [`SubjectIndex::generation`] so per-connection caches can notice.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::RandomState;
use parking_lot::RwLock;

use super::{
    has_empty_token, is_valid_queue_name, is_valid_subject, subject_is_literal,
    subject_matches_pattern, SubjectError, FULL_WILDCARD, SINGLE_WILDCARD, TOKEN_SEPARATOR,
};

/// Cache entries per index when the caller has no better idea (nats-server uses the same).
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

/// Shards split the cache so publishers on different subjects do not contend on one lock.
const MAX_CACHE_SHARDS: usize = 16;
/// Small caches get fewer shards so that evicting from one shard frees a useful amount.
const MIN_ENTRIES_PER_SHARD: usize = 32;

/// Everything a published subject reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchResult<T> {
    /// Plain subscriptions; each receives the message.
    pub plain: Vec<T>,
    /// One entry per queue group name; one member of each receives the message.
    pub queue_groups: Vec<QueueGroupMatch<T>>,
}

/// The members of one queue group that match a subject, possibly from several subjects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGroupMatch<T> {
    pub name: Bytes,
    pub members: Vec<T>,
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            queue_groups: Vec::new(),
        }
    }
}

impl<T> MatchResult<T> {
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queue_groups.is_empty()
    }

    /// Deliveries per message: every plain subscription plus one per queue group.
    pub fn fanout(&self) -> usize {
        self.plain.len() + self.queue_groups.len()
    }

    pub fn queue_group(&self, name: &[u8]) -> Option<&QueueGroupMatch<T>> {
        self.queue_groups
            .iter()
            .find(|group| group.name.as_ref() == name)
    }
}

impl<T: Clone> MatchResult<T> {
    fn add_node(&mut self, node: &Node<T>) {
        self.plain.extend_from_slice(&node.plain);
        for group in &node.queue_groups {
            self.add_queue_members(&group.name, &group.members);
        }
    }

    fn add_queue_members(&mut self, name: &Bytes, members: &[T]) {
        // Linear: a subject rarely matches more than a handful of queue groups.
        match self
            .queue_groups
            .iter_mut()
            .find(|group| group.name == *name)
        {
            Some(group) => group.members.extend_from_slice(members),
            None => self.queue_groups.push(QueueGroupMatch {
                name: name.clone(),
                members: members.to_vec(),
            }),
        }
    }

    fn with_added(&self, queue_group: Option<&Bytes>, value: &T) -> Self {
        let mut result = self.clone();
        match queue_group {
            None => result.plain.push(value.clone()),
            Some(name) => result.add_queue_members(name, std::slice::from_ref(value)),
        }
        result
    }
}

impl<T: Clone + PartialEq> MatchResult<T> {
    fn with_removed(&self, queue_group: Option<&[u8]>, value: &T) -> Self {
        let mut result = self.clone();
        match queue_group {
            None => remove_one(&mut result.plain, value),
            Some(name) => remove_queue_member(&mut result.queue_groups, name, value),
        };
        result
    }
}

/// Removes one occurrence of `value`; order is not part of any contract, so `swap_remove`.
fn remove_one<T: PartialEq>(values: &mut Vec<T>, value: &T) -> bool {
    match values.iter().position(|candidate| candidate == value) {
        Some(position) => {
            values.swap_remove(position);
            true
        }
        None => false,
    }
}

/// Removes one occurrence of `value` from the named group, dropping the group once empty.
fn remove_queue_member<T: PartialEq>(
    groups: &mut Vec<QueueGroupMatch<T>>,
    name: &[u8],
    value: &T,
) -> bool {
    let Some(position) = groups.iter().position(|group| group.name.as_ref() == name) else {
        return false;
    };
    let group = &mut groups[position];
    let removed = remove_one(&mut group.members, value);
    if group.members.is_empty() {
        groups.swap_remove(position);
    }
    removed
}

/// The subscriptions whose subject ends at this token, and the level below it.
struct Node<T> {
    plain: Vec<T>,
    queue_groups: Vec<QueueGroupMatch<T>>,
    next: Option<Box<Level<T>>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            queue_groups: Vec::new(),
            next: None,
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queue_groups.is_empty() && self.next.is_none()
    }
}

/// One token position of the trie.
struct Level<T> {
    literal: HashMap<Box<[u8]>, Node<T>, RandomState>,
    single_wildcard: Option<Box<Node<T>>>,
    /// `>` is always the last token, so this node never has a `next` level.
    full_wildcard: Option<Box<Node<T>>>,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Self {
            literal: HashMap::default(),
            single_wildcard: None,
            full_wildcard: None,
        }
    }
}

impl<T> Level<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.single_wildcard.is_none() && self.full_wildcard.is_none()
    }

    fn node_or_insert(&mut self, token: &[u8]) -> &mut Node<T> {
        if token == SINGLE_WILDCARD {
            return self.single_wildcard.get_or_insert_with(Box::default);
        }
        if token == FULL_WILDCARD {
            return self.full_wildcard.get_or_insert_with(Box::default);
        }
        // Looked up before inserting so an existing token costs no key allocation.
        if !self.literal.contains_key(token) {
            self.literal.insert(Box::from(token), Node::default());
        }
        self.literal
            .get_mut(token)
            .expect("the token is present: inserted just above when missing")
    }

    fn node_mut(&mut self, token: &[u8]) -> Option<&mut Node<T>> {
        if token == SINGLE_WILDCARD {
            self.single_wildcard.as_deref_mut()
        } else if token == FULL_WILDCARD {
            self.full_wildcard.as_deref_mut()
        } else {
            self.literal.get_mut(token)
        }
    }

    fn prune(&mut self, token: &[u8]) {
        if token == SINGLE_WILDCARD {
            self.single_wildcard = None;
        } else if token == FULL_WILDCARD {
            self.full_wildcard = None;
        } else {
            self.literal.remove(token);
        }
    }
}

/// Splits off the first token; the rest is `None` when this was the last token.
fn split_token(subject: &[u8]) -> (&[u8], Option<&[u8]>) {
    match subject.iter().position(|&byte| byte == TOKEN_SEPARATOR) {
        Some(at) => (&subject[..at], Some(&subject[at + 1..])),
        None => (subject, None),
    }
}

/// Adds every subscription under `level` that matches the literal `subject`.
fn collect_matches<T: Clone>(
    mut level: &Level<T>,
    mut subject: &[u8],
    result: &mut MatchResult<T>,
) {
    loop {
        let (token, rest) = split_token(subject);
        if let Some(node) = &level.full_wildcard {
            result.add_node(node);
        }
        if let Some(node) = &level.single_wildcard {
            match (rest, &node.next) {
                (None, _) => result.add_node(node),
                (Some(rest), Some(next)) => collect_matches(next, rest, result),
                (Some(_), None) => {}
            }
        }
        let Some(node) = level.literal.get(token) else {
            return;
        };
        match (rest, &node.next) {
            (None, _) => return result.add_node(node),
            (Some(rest), Some(next)) => {
                level = next;
                subject = rest;
            }
            (Some(_), None) => return,
        }
    }
}

/// Removes one occurrence of `value` at `subject` below `level`, pruning emptied nodes.
fn remove_from_level<T: PartialEq>(
    level: &mut Level<T>,
    subject: &[u8],
    queue_group: Option<&[u8]>,
    value: &T,
) -> bool {
    let (token, rest) = split_token(subject);
    let Some(node) = level.node_mut(token) else {
        return false;
    };
    let removed = match rest {
        None => match queue_group {
            None => remove_one(&mut node.plain, value),
            Some(name) => remove_queue_member(&mut node.queue_groups, name, value),
        },
        Some(rest) => match node.next.as_deref_mut() {
            None => false,
            Some(next) => {
                let removed = remove_from_level(next, rest, queue_group, value);
                if next.is_empty() {
                    node.next = None;
                }
                removed
            }
        },
    };
    if node.is_empty() {
        level.prune(token);
    }
    removed
}

fn visit_node<T, F: FnMut(&[u8], Option<&[u8]>, &T)>(
    token: &[u8],
    node: &Node<T>,
    subject: &mut Vec<u8>,
    visit: &mut F,
) {
    let parent_length = subject.len();
    if parent_length > 0 {
        subject.push(TOKEN_SEPARATOR);
    }
    subject.extend_from_slice(token);
    for value in &node.plain {
        visit(subject, None, value);
    }
    for group in &node.queue_groups {
        for member in &group.members {
            visit(subject, Some(&group.name), member);
        }
    }
    if let Some(next) = &node.next {
        visit_level(next, subject, visit);
    }
    subject.truncate(parent_length);
}

fn visit_level<T, F: FnMut(&[u8], Option<&[u8]>, &T)>(
    level: &Level<T>,
    subject: &mut Vec<u8>,
    visit: &mut F,
) {
    for (token, node) in &level.literal {
        visit_node(token, node, subject, visit);
    }
    if let Some(node) = &level.single_wildcard {
        visit_node(SINGLE_WILDCARD, node, subject, visit);
    }
    if let Some(node) = &level.full_wildcard {
        visit_node(FULL_WILDCARD, node, subject, visit);
    }
}

/// One slice of the match cache with its own lock and counters.
/// Aligned so that shards used by different threads do not share a cache line.
#[repr(align(128))]
struct CacheShard<T> {
    entries: RwLock<ShardEntries<T>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct ShardEntries<T> {
    results: HashMap<Box<[u8]>, Arc<MatchResult<T>>, RandomState>,
    /// Xorshift state choosing eviction victims; any spread is good enough.
    eviction_state: u64,
}

impl<T> ShardEntries<T> {
    /// Drops about a quarter of the entries, chosen at random, and at least one if any:
    /// freeing a batch keeps a burst of misses from evicting on every insert.
    /// Returns how many were dropped.
    fn evict(&mut self) -> usize {
        let before = self.results.len();
        let mut state = self.eviction_state;
        self.results.retain(|_, _| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state & 3 != 0
        });
        self.eviction_state = state;
        if self.results.len() == before {
            let mut dropped = false;
            self.results
                .retain(|_, _| std::mem::replace(&mut dropped, true));
        }
        before - self.results.len()
    }
}

/// Subscriptions by subject, with a bounded cache of match results.
pub struct SubjectIndex<T> {
    root: Level<T>,
    shards: Box<[CacheShard<T>]>,
    shard_hasher: RandomState,
    /// The most results all shards hold together; zero disables the cache.
    cache_capacity: usize,
    /// Slots reserved before a shard inserts and released after it drops entries, so
    /// `entries held <= cache_entries <= cache_capacity` at every instant. One budget for all
    /// shards lets an unevenly hashed working set use the whole capacity.
    cache_entries: AtomicUsize,
    /// Returned for every subject nothing matches, so those cost no allocation.
    empty: Arc<MatchResult<T>>,
    subscriptions: usize,
    inserts: u64,
    removes: u64,
    generation: u64,
}

/// A snapshot for monitoring (`/subsz`). Fanout is measured over the cached results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectIndexStats {
    pub subscriptions: usize,
    pub cache_entries: usize,
    pub inserts: u64,
    pub removes: u64,
    pub matches: u64,
    pub cache_hits: u64,
    pub cache_hit_rate: f64,
    pub max_fanout: usize,
    pub avg_fanout: f64,
}

impl<T> fmt::Debug for SubjectIndex<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SubjectIndex")
            .field("subscriptions", &self.subscriptions)
            .field("generation", &self.generation)
            .field("cache_capacity", &self.cache_capacity())
            .finish_non_exhaustive()
    }
}

impl<T> Default for SubjectIndex<T> {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl<T: Clone> SubjectIndex<T> {
    /// Adds `value` as a subscription to `subject`, in `queue_group` when given.
    pub fn insert(
        &mut self,
        subject: &[u8],
        queue_group: Option<&[u8]>,
        value: T,
    ) -> Result<(), SubjectError> {
        if !is_valid_subject(subject) {
            return Err(SubjectError::InvalidSubject {
                subject: subject.to_vec(),
            });
        }
        if let Some(name) = queue_group.filter(|name| !is_valid_queue_name(name)) {
            return Err(SubjectError::InvalidQueueGroup {
                queue_group: name.to_vec(),
            });
        }
        let mut level = &mut self.root;
        let mut rest = subject;
        let node = loop {
            let (token, remainder) = split_token(rest);
            let node = level.node_or_insert(token);
            match remainder {
                None => break node,
                Some(remainder) => {
                    rest = remainder;
                    level = node.next.get_or_insert_with(Box::default).as_mut();
                }
            }
        };
        let queue_name = queue_group.map(|name| {
            match node
                .queue_groups
                .iter_mut()
                .find(|group| group.name.as_ref() == name)
            {
                Some(group) => {
                    group.members.push(value.clone());
                    group.name.clone()
                }
                None => {
                    // Cached results share this allocation of the name.
                    let name = Bytes::copy_from_slice(name);
                    node.queue_groups.push(QueueGroupMatch {
                        name: name.clone(),
                        members: vec![value.clone()],
                    });
                    name
                }
            }
        });
        if queue_name.is_none() {
            node.plain.push(value.clone());
        }
        self.update_cache(subject, |result| {
            result.with_added(queue_name.as_ref(), &value)
        });
        self.subscriptions += 1;
        self.inserts += 1;
        self.generation += 1;
        Ok(())
    }

    /// Patches every cached result that the subscription subject `subject` matches.
    fn update_cache(&mut self, subject: &[u8], patch: impl Fn(&MatchResult<T>) -> MatchResult<T>) {
        if self.cache_capacity == 0 {
            return;
        }
        // A literal subscription matches only its own subject: one lookup, not a sweep.
        if subject_is_literal(subject) {
            let shard = self.shard_index(subject);
            if let Some(result) = self.shards[shard]
                .entries
                .get_mut()
                .results
                .get_mut(subject)
            {
                *result = Arc::new(patch(result));
            }
            return;
        }
        for shard in self.shards.iter_mut() {
            for (cached_subject, result) in shard.entries.get_mut().results.iter_mut() {
                if subject_matches_pattern(subject, cached_subject) {
                    *result = Arc::new(patch(result));
                }
            }
        }
    }
}

impl<T: Clone + PartialEq> SubjectIndex<T> {
    /// Removes one subscription equal to `value` at `subject`/`queue_group`.
    /// Returns false (and changes nothing, not even the generation) when there was none.
    pub fn remove(&mut self, subject: &[u8], queue_group: Option<&[u8]>, value: &T) -> bool {
        if !is_valid_subject(subject)
            || !remove_from_level(&mut self.root, subject, queue_group, value)
        {
            return false;
        }
        self.update_cache(subject, |result| result.with_removed(queue_group, value));
        self.subscriptions -= 1;
        self.removes += 1;
        self.generation += 1;
        true
    }
}

impl<T: Clone> SubjectIndex<T> {
    /// All subscriptions matching the published `subject`.
    ///
    /// The result is shared with the cache and other callers; a subject with an empty token
    /// matches nothing (and is not cached).
    pub fn matches(&self, subject: &[u8]) -> Arc<MatchResult<T>> {
        let shard_index = self.shard_index(subject);
        let shard = &self.shards[shard_index];
        if self.cache_capacity > 0 {
            if let Some(result) = shard.entries.read().results.get(subject) {
                shard.hits.fetch_add(1, Ordering::Relaxed);
                return Arc::clone(result);
            }
        }
        shard.misses.fetch_add(1, Ordering::Relaxed);
        if has_empty_token(subject) {
            return Arc::clone(&self.empty);
        }
        let mut result = MatchResult::default();
        collect_matches(&self.root, subject, &mut result);
        let result = if result.is_empty() {
            Arc::clone(&self.empty)
        } else {
            Arc::new(result)
        };
        if self.cache_capacity > 0 {
            self.cache(shard_index, subject, &result);
        }
        result
    }

    fn cache(&self, shard_index: usize, subject: &[u8], result: &Arc<MatchResult<T>>) {
        if !self.reserve_cache_slot() && !self.evict_from_any_shard(shard_index) {
            // Every other shard was busy or empty; the result is correct uncached.
            return;
        }
        let key = Box::from(subject);
        let mut entries = self.shards[shard_index].entries.write();
        // Threads missing on the same subject at once computed the same result.
        if entries.results.insert(key, Arc::clone(result)).is_some() {
            self.cache_entries.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn reserve_cache_slot(&self) -> bool {
        self.cache_entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held < self.cache_capacity).then_some(held + 1)
            })
            .is_ok()
    }

    /// Evicts from the missing subject's shard first, then from the others, and reserves a
    /// slot. Takes one shard lock at a time, so it cannot deadlock with another thread.
    fn evict_from_any_shard(&self, first_shard: usize) -> bool {
        for offset in 0..self.shards.len() {
            let shard = &self.shards[(first_shard + offset) & (self.shards.len() - 1)];
            let Some(mut entries) = shard.entries.try_write() else {
                continue;
            };
            let evicted = entries.evict();
            drop(entries);
            self.cache_entries.fetch_sub(evicted, Ordering::Relaxed);
            if self.reserve_cache_slot() {
                return true;
            }
        }
        false
    }
}

impl<T> SubjectIndex<T> {
    /// An empty index whose match cache holds at most `cache_capacity` results (0 disables it).
    pub fn new(cache_capacity: usize) -> Self {
        let wanted_shards = (cache_capacity / MIN_ENTRIES_PER_SHARD).clamp(1, MAX_CACHE_SHARDS);
        // A power of two so the shard is picked with a mask.
        let shard_count = 1 << wanted_shards.ilog2();
        let shards = (0..shard_count)
            .map(|shard| CacheShard {
                entries: RwLock::new(ShardEntries {
                    results: HashMap::default(),
                    eviction_state: 0x9E37_79B9_7F4A_7C15 ^ (shard as u64 + 1),
                }),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            })
            .collect();
        Self {
            root: Level::default(),
            shards,
            shard_hasher: RandomState::default(),
            cache_capacity,
            cache_entries: AtomicUsize::new(0),
            empty: Arc::new(MatchResult::default()),
            subscriptions: 0,
            inserts: 0,
            removes: 0,
            generation: 0,
        }
    }

    fn shard_index(&self, subject: &[u8]) -> usize {
        (self.shard_hasher.hash_one(subject) as usize) & (self.shards.len() - 1)
    }

    /// Bumped by every insert and every successful remove.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The number of subscriptions (plain and queue).
    pub fn len(&self) -> usize {
        self.subscriptions
    }

    pub fn is_empty(&self) -> bool {
        self.subscriptions == 0
    }

    /// The most results the cache holds at once.
    pub fn cache_capacity(&self) -> usize {
        self.cache_capacity
    }

    /// Cached results, give or take the misses being cached right now.
    pub fn cache_len(&self) -> usize {
        self.cache_entries.load(Ordering::Relaxed)
    }

    /// Visits every subscription as (subject, queue group, value), in no particular order.
    pub fn for_each(&self, mut visit: impl FnMut(&[u8], Option<&[u8]>, &T)) {
        let mut subject = Vec::with_capacity(64);
        visit_level(&self.root, &mut subject, &mut visit);
    }

    pub fn stats(&self) -> SubjectIndexStats {
        let mut stats = SubjectIndexStats {
            subscriptions: self.subscriptions,
            inserts: self.inserts,
            removes: self.removes,
            ..SubjectIndexStats::default()
        };
        let mut total_fanout = 0;
        for shard in self.shards.iter() {
            let hits = shard.hits.load(Ordering::Relaxed);
            stats.cache_hits += hits;
            stats.matches += hits + shard.misses.load(Ordering::Relaxed);
            let entries = shard.entries.read();
            stats.cache_entries += entries.results.len();
            for result in entries.results.values() {
                total_fanout += result.fanout();
                stats.max_fanout = stats.max_fanout.max(result.fanout());
            }
        }
        if stats.matches > 0 {
            stats.cache_hit_rate = stats.cache_hits as f64 / stats.matches as f64;
        }
        if stats.cache_entries > 0 {
            stats.avg_fanout = total_fanout as f64 / stats.cache_entries as f64;
        }
        stats
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
