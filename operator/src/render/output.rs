//! Rendered output as text: a YAML stream for review or `kubectl apply`, or one file per
//! config and object (what `render --output-dir` writes and the golden tests compare).

use std::collections::BTreeMap;

use super::{RenderError, Rendered};

/// Lines of a `#` comment block.
fn comment(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                "#\n".to_string()
            } else {
                format!("# {line}\n")
            }
        })
        .collect()
}

fn object_yaml(value: &serde_json::Value, kind: &str, name: &str) -> Result<String, RenderError> {
    serde_yaml::to_string(value).map_err(|source| RenderError::Serialize {
        kind: "YAML document",
        name: format!("{kind} {name}"),
        source: serde::ser::Error::custom(source),
    })
}

/// Every object as one YAML stream, preceded by comments naming the source and what is
/// waited for.
pub fn yaml_stream(source: &str, rendered: &Rendered) -> Result<String, RenderError> {
    let mut out = comment(&format!("Rendered by tern-operator from {source}."));
    if rendered.waiting_for.is_empty() {
        out.push_str(&comment("Waiting for: nothing."));
    } else {
        out.push_str(&comment("Waiting for (left out until they exist):"));
        for item in &rendered.waiting_for {
            out.push_str(&comment(&format!("  - {item}")));
        }
    }
    for object in &rendered.objects {
        out.push_str("---\n");
        out.push_str(&object_yaml(
            &object.to_value()?,
            object.kind(),
            object.name(),
        )?);
    }
    Ok(out)
}

/// One file per config (`<pod>.conf`) and per object (`<kind>-<name>.yaml`, kind in lower
/// case), plus `waiting-for.txt` when something is waited for.
pub fn output_files(rendered: &Rendered) -> Result<BTreeMap<String, String>, RenderError> {
    let mut files = rendered.configs.clone();
    for object in &rendered.objects {
        let file = format!("{}-{}.yaml", object.kind().to_lowercase(), object.name());
        files.insert(
            file,
            object_yaml(&object.to_value()?, object.kind(), object.name())?,
        );
    }
    if !rendered.waiting_for.is_empty() {
        let mut text = rendered.waiting_for.join("\n");
        text.push('\n');
        files.insert("waiting-for.txt".to_string(), text);
    }
    Ok(files)
}
