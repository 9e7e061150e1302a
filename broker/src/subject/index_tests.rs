//! Tests of the subject index: matching semantics, queue grouping, pruning, the cache kept
//! exact across changes, and a property test against a linear matcher.

use super::*;

type Index = SubjectIndex<u32>;

fn sorted<T: Ord + Clone>(values: &[T]) -> Vec<T> {
    let mut values = values.to_vec();
    values.sort();
    values
}

/// A result in a canonical form: sorted plain values and sorted (name, members) groups.
type Canonical = (Vec<u32>, Vec<(Vec<u8>, Vec<u32>)>);

fn canonical(result: &MatchResult<u32>) -> Canonical {
    let mut groups: Vec<_> = result
        .queue_groups
        .iter()
        .map(|group| (group.name.to_vec(), sorted(&group.members)))
        .collect();
    groups.sort();
    (sorted(&result.plain), groups)
}

fn plain(index: &Index, subject: &str) -> Vec<u32> {
    sorted(&index.matches(subject.as_bytes()).plain)
}

fn index_with(subscriptions: &[(&str, u32)]) -> Index {
    index_with_capacity(DEFAULT_CACHE_CAPACITY, subscriptions)
}

fn index_with_capacity(capacity: usize, subscriptions: &[(&str, u32)]) -> Index {
    let mut index = Index::new(capacity);
    for (subject, value) in subscriptions {
        index
            .insert(subject.as_bytes(), None, *value)
            .expect("valid subject");
    }
    index
}

#[test]
fn literal_and_wildcard_subscriptions_match() {
    let index = index_with(&[
        ("foo.bar", 1),
        ("foo.*", 2),
        ("foo.>", 3),
        ("*.bar", 4),
        (">", 5),
        ("foo", 6),
        ("foo.bar.baz", 7),
        ("*.*.baz", 8),
    ]);
    assert_eq!(plain(&index, "foo.bar"), [1, 2, 3, 4, 5]);
    assert_eq!(plain(&index, "foo"), [5, 6]);
    assert_eq!(plain(&index, "foo.bar.baz"), [3, 5, 7, 8]);
    assert_eq!(plain(&index, "other.bar"), [4, 5]);
    assert_eq!(plain(&index, "a.b.c.d"), [5]);
}

#[test]
fn full_wildcard_needs_a_token_and_single_wildcard_a_non_empty_one() {
    let index = index_with(&[("foo.>", 1), ("foo.*", 2), (">", 3)]);
    assert_eq!(plain(&index, "foo"), [3]);
    for subject in ["", ".", "foo.", "foo..bar", ".foo", "foo...bar"] {
        assert!(index.matches(subject.as_bytes()).is_empty(), "{subject:?}");
    }
    assert_eq!(
        index.cache_len(),
        1,
        "subjects with empty tokens are not cached"
    );
}

#[test]
fn wildcard_bytes_inside_tokens_are_literal() {
    let index = index_with(&[("foo*", 1), ("foo.>bar", 2), ("*bar", 3)]);
    assert_eq!(plain(&index, "foo*"), [1]);
    assert!(index.matches(b"fooX").is_empty());
    assert_eq!(plain(&index, "foo.>bar"), [2]);
    assert!(index.matches(b"foo.x").is_empty());
    assert_eq!(plain(&index, "*bar"), [3]);
}

#[test]
fn invalid_subjects_and_queue_groups_are_rejected() {
    let mut index = Index::new(16);
    for subject in ["", "foo..bar", "foo.", "foo.>.bar", "foo bar"] {
        assert_eq!(
            index.insert(subject.as_bytes(), None, 1),
            Err(SubjectError::InvalidSubject {
                subject: subject.as_bytes().to_vec()
            })
        );
    }
    assert_eq!(
        index.insert(b"foo", Some(b"a b"), 1),
        Err(SubjectError::InvalidQueueGroup {
            queue_group: b"a b".to_vec()
        })
    );
    assert!(index.insert(b"foo", Some(b""), 1).is_err());
    assert!(index.is_empty());
    assert_eq!(index.generation(), 0);
}

#[test]
fn queue_members_are_grouped_by_name_across_subjects() {
    let mut index = Index::new(DEFAULT_CACHE_CAPACITY);
    for (subject, group, value) in [
        ("orders.new", Some("workers"), 1),
        ("orders.*", Some("workers"), 2),
        ("orders.>", Some("auditors"), 3),
        ("orders.new", Some("workers"), 4),
        ("orders.new", None, 5),
        ("orders.old", Some("workers"), 6),
    ] {
        index
            .insert(subject.as_bytes(), group.map(str::as_bytes), value)
            .expect("valid subject");
    }
    let result = index.matches(b"orders.new");
    assert_eq!(
        canonical(&result),
        (
            vec![5],
            vec![
                (b"auditors".to_vec(), vec![3]),
                (b"workers".to_vec(), vec![1, 2, 4])
            ]
        )
    );
    assert_eq!(result.fanout(), 3);
    assert!(result.queue_group(b"workers").is_some());
    assert!(result.queue_group(b"nobody").is_none());
}

#[test]
fn remove_takes_one_occurrence_and_prunes_empty_nodes() {
    let mut index = Index::new(DEFAULT_CACHE_CAPACITY);
    let subscriptions = [
        ("a.b.c", None, 1),
        ("a.b.c", None, 1),
        ("a.*.c", Some("q"), 2),
        ("a.>", None, 3),
        ("*", Some("q"), 4),
    ];
    for (subject, group, value) in subscriptions {
        index
            .insert(subject.as_bytes(), group.map(str::as_bytes), value)
            .expect("valid subject");
    }
    assert!(!index.remove(b"a.b.c", None, &9), "unknown value");
    assert!(!index.remove(b"a.b.c", Some(b"q"), &1), "wrong queue group");
    assert!(!index.remove(b"a.b", None, &1), "wrong subject");
    assert!(!index.remove(b"a..b", None, &1), "invalid subject");
    assert_eq!(index.generation(), 5, "failed removes change nothing");

    assert!(index.remove(b"a.b.c", None, &1));
    assert_eq!(plain(&index, "a.b.c"), [1, 3]);
    for (subject, group, value) in subscriptions.iter().skip(1) {
        assert!(index.remove(subject.as_bytes(), group.map(str::as_bytes), value));
    }
    assert!(index.is_empty());
    assert!(index.root.is_empty(), "every node was pruned");
    assert!(index.matches(b"a.b.c").is_empty());
    assert_eq!(index.generation(), 10);
}

#[derive(Debug)]
struct Subscription;

/// How the broker stores subscriptions: compared by identity, not content.
#[derive(Debug, Clone)]
struct SubscriptionRef(Arc<Subscription>);

impl PartialEq for SubscriptionRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[test]
fn values_compared_by_pointer_are_removed_individually() {
    fn assert_shareable<V: Send + Sync>() {}
    assert_shareable::<SubjectIndex<SubscriptionRef>>();

    let mut index = SubjectIndex::new(8);
    let first = SubscriptionRef(Arc::new(Subscription));
    let second = SubscriptionRef(Arc::new(Subscription));
    index.insert(b"foo", None, first.clone()).expect("valid");
    index.insert(b"foo", None, second.clone()).expect("valid");
    assert_eq!(index.matches(b"foo").plain.len(), 2);
    assert!(index.remove(b"foo", None, &first));
    let remaining = index.matches(b"foo");
    assert_eq!(remaining.plain.len(), 1);
    assert!(remaining.plain[0] == second);
}

#[test]
fn cached_results_follow_inserts_and_removes() {
    let mut index = index_with(&[("foo.bar", 1)]);
    let before = index.matches(b"foo.bar");
    assert!(
        Arc::ptr_eq(&before, &index.matches(b"foo.bar")),
        "a hit shares the result"
    );
    assert!(index.matches(b"nothing").is_empty());

    index.insert(b"foo.*", None, 2).expect("valid");
    index.insert(b"foo.bar", Some(b"q"), 3).expect("valid");
    index.insert(b"nothing", None, 4).expect("valid");
    assert_eq!(
        before.plain,
        [1],
        "results already handed out do not change"
    );
    assert_eq!(
        canonical(&index.matches(b"foo.bar")),
        (vec![1, 2], vec![(b"q".to_vec(), vec![3])])
    );
    assert_eq!(plain(&index, "nothing"), [4]);

    assert!(index.remove(b"foo.*", None, &2));
    assert!(index.remove(b"foo.bar", Some(b"q"), &3));
    assert_eq!(canonical(&index.matches(b"foo.bar")), (vec![1], vec![]));
    let stats = index.stats();
    assert_eq!(
        (stats.inserts, stats.removes, stats.subscriptions),
        (4, 2, 2)
    );
}

#[test]
fn generation_moves_on_every_change() {
    let mut index = Index::new(0);
    let mut last = index.generation();
    index.insert(b"a", None, 1).expect("valid");
    assert!(index.generation() > last);
    last = index.generation();
    assert!(index.remove(b"a", None, &1));
    assert!(index.generation() > last);
}

#[test]
fn cache_stays_within_its_capacity() {
    for capacity in [0, 1, 7, 100, DEFAULT_CACHE_CAPACITY] {
        let index = index_with_capacity(capacity, &[(">", 1)]);
        assert!(index.cache_capacity() <= capacity);
        for round in 0..3 * capacity.max(10) {
            let subject = format!("subject.{round}");
            assert_eq!(plain(&index, &subject), [1]);
            assert!(index.cache_len() <= capacity, "capacity {capacity}");
            assert_eq!(index.stats().cache_entries, index.cache_len());
        }
    }
    assert_eq!(Index::default().cache_capacity(), DEFAULT_CACHE_CAPACITY);
}

#[test]
fn stats_report_counts_hits_and_fanout() {
    let mut index = index_with(&[("a", 1), ("a", 2), ("*", 3)]);
    index.insert(b"a", Some(b"q"), 4).expect("valid");
    index.matches(b"a");
    index.matches(b"a");
    index.matches(b"b");
    index.matches(b"b");
    let stats = index.stats();
    assert_eq!(stats.subscriptions, 4);
    assert_eq!(stats.cache_entries, 2);
    assert_eq!((stats.matches, stats.cache_hits), (4, 2));
    assert!((stats.cache_hit_rate - 0.5).abs() < f64::EPSILON);
    assert_eq!(stats.max_fanout, 4, "three plain and one queue group");
    assert!((stats.avg_fanout - 2.5).abs() < f64::EPSILON);
}

#[test]
fn for_each_visits_every_subscription_with_its_subject() {
    let mut index = index_with(&[("a.b", 1), ("a.*", 2), ("a.>", 3), ("a", 4), (">", 5)]);
    index.insert(b"a.b", Some(b"q"), 6).expect("valid");
    let mut visited = Vec::new();
    index.for_each(|subject, queue_group, value| {
        visited.push((subject.to_vec(), queue_group.map(<[u8]>::to_vec), *value));
    });
    visited.sort();
    let expected: Vec<_> = [
        (">", None, 5),
        ("a", None, 4),
        ("a.*", None, 2),
        ("a.>", None, 3),
        ("a.b", None, 1),
        ("a.b", Some("q"), 6),
    ]
    .iter()
    .map(|(subject, group, value)| {
        (
            subject.as_bytes().to_vec(),
            group.map(|g| g.as_bytes().to_vec()),
            *value,
        )
    })
    .collect();
    assert_eq!(visited, expected);
}

/// A deterministic xorshift generator, so failures reproduce.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }

    fn subject(&mut self, alphabet: &[&str]) -> String {
        let length = 1 + self.below(4);
        let tokens: Vec<&str> = (0..length)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect();
        tokens.join(".")
    }
}

/// The definition of matching, written independently of the index.
fn naive_matches(pattern: &[&str], literal: &[&str]) -> bool {
    match (pattern.split_first(), literal.split_first()) {
        (None, None) => true,
        (Some((&">", _)), Some(_)) => true,
        (Some((token, pattern_rest)), Some((literal_token, literal_rest))) => {
            (*token == "*" || token == literal_token) && naive_matches(pattern_rest, literal_rest)
        }
        _ => false,
    }
}

fn naive_result(
    subscriptions: &[(String, Option<String>, u32)],
    literal: &str,
) -> MatchResult<u32> {
    let literal: Vec<&str> = literal.split('.').collect();
    let mut result = MatchResult::default();
    for (subject, group, value) in subscriptions {
        let pattern: Vec<&str> = subject.split('.').collect();
        if naive_matches(&pattern, &literal) {
            let group = group
                .as_ref()
                .map(|name| Bytes::copy_from_slice(name.as_bytes()));
            result = result.with_added(group.as_ref(), value);
        }
    }
    result
}

#[test]
fn matches_agree_with_a_linear_scan_through_random_changes() {
    let patterns = ["a", "b", "c", "*", ">", "a*"];
    let literals = ["a", "b", "c", "a*", "*", ">"];
    let groups = [None, None, Some("q1"), Some("q2")];
    for (seed, capacity) in [(1, 0), (2, 3), (3, 40), (4, 1024), (5, 64)] {
        let mut random = Random(0x5EED_0000 + seed);
        let mut index = Index::new(capacity);
        let mut subscriptions: Vec<(String, Option<String>, u32)> = Vec::new();
        for step in 0..3_000u32 {
            if subscriptions.is_empty() || random.below(10) < 6 {
                let subject = random.subject(&patterns);
                let group = groups[random.below(groups.len())].map(str::to_owned);
                // Reusing values exercises the multiset semantics.
                let value = step % 50;
                let inserted = index.insert(
                    subject.as_bytes(),
                    group.as_deref().map(str::as_bytes),
                    value,
                );
                if subject.contains(">.") {
                    assert!(inserted.is_err(), "{subject}");
                    continue;
                }
                inserted.expect("valid subject");
                subscriptions.push((subject, group, value));
            } else {
                let (subject, group, value) =
                    subscriptions.swap_remove(random.below(subscriptions.len()));
                assert!(index.remove(
                    subject.as_bytes(),
                    group.as_deref().map(str::as_bytes),
                    &value
                ));
            }
            for _ in 0..3 {
                let literal = random.subject(&literals);
                assert_eq!(
                    canonical(&index.matches(literal.as_bytes())),
                    canonical(&naive_result(&subscriptions, &literal)),
                    "seed {seed} step {step} literal {literal}"
                );
            }
            assert!(index.cache_len() <= capacity);
            assert_eq!(index.len(), subscriptions.len());
        }
        for (subject, group, value) in subscriptions.drain(..) {
            assert!(index.remove(
                subject.as_bytes(),
                group.as_deref().map(str::as_bytes),
                &value
            ));
        }
        assert!(index.root.is_empty(), "seed {seed}: every node was pruned");
    }
}

#[test]
fn many_threads_match_while_one_thread_changes_the_index() {
    let index = RwLock::new(index_with(&[("events.>", 0)]));
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for reader in 0..4u64 {
            let (index, stop) = (&index, &stop);
            scope.spawn(move || {
                let mut random = Random(reader + 11);
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds < 1_000 {
                    let subject = format!("events.{}", random.below(20));
                    let result = index.read().matches(subject.as_bytes());
                    assert!(
                        result.plain.contains(&0),
                        "the permanent subscription is always seen"
                    );
                    let expected = subject
                        .trim_start_matches("events.")
                        .parse::<u32>()
                        .expect("number")
                        + 1;
                    assert!(result
                        .plain
                        .iter()
                        .all(|&value| value == 0 || value == expected));
                    rounds += 1;
                }
            });
        }
        let mut random = Random(99);
        for _ in 0..2_000 {
            let value = random.below(20) as u32;
            let subject = format!("events.{value}");
            let mut index = index.write();
            if !index.remove(subject.as_bytes(), None, &(value + 1)) {
                index
                    .insert(subject.as_bytes(), None, value + 1)
                    .expect("valid");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let index = index.into_inner();
    let stats = index.stats();
    assert!(stats.cache_hits > 0);
    assert_eq!(stats.inserts - stats.removes, index.len() as u64);
}
