use std::collections::HashMap;
use std::io::Write as _;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Uncommenting every `# key = value` line of the example gives exactly the defaults (an
/// optional key, none by default, is shown with an example value), and every key of the
/// configuration is documented in the example.
#[test]
fn example_documents_every_key_with_its_default() {
    let uncommented: String = EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
            _ => l,
        })
        // Quoted keys are examples of free-form tables (properties, files, overrides).
        .filter(|l| !l.starts_with('"'))
        .collect::<Vec<_>>()
        .join("\n");
    let f = file(&uncommented);
    let parsed = RawConfig::load_with_env(Some(f.path()), Some(HashMap::new())).unwrap();
    let defaults = serde_json::to_value(RawConfig::default()).unwrap();
    let mut parsed = serde_json::to_value(parsed).unwrap();
    for (section, value) in defaults.as_object().unwrap() {
        for (key, default) in value.as_object().into_iter().flatten() {
            if default.is_null() {
                let shown = &mut parsed[section][key];
                assert!(!shown.is_null(), "{section}.{key}: optional, shown with an example value");
                *shown = serde_json::Value::Null;
            }
        }
    }
    assert_eq!(parsed, defaults);

    for (section, value) in defaults.as_object().unwrap() {
        match value.as_object() {
            Some(keys) => {
                assert!(EXAMPLE.contains(&format!("[{section}]")), "section {section}");
                for key in keys.keys() {
                    let documented = EXAMPLE.contains(&format!("# {key} = "))
                        || EXAMPLE.contains(&format!("[{section}.{key}]"));
                    assert!(documented, "{section}.{key} is not in example.toml");
                }
            }
            None => assert!(EXAMPLE.contains(&format!("# {section} = ")), "{section}"),
        }
    }
}
