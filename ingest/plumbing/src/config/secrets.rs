//! Secrets in the configuration: passwords, tokens and private keys come from the configuration
//! file, the environment (`STATMSG__...`) or a file the configuration names (`[kafka.secret_files]`,
//! `[influxdb] password_file`, `token_file`), never from the command line; and they never reach a
//! log line, `Debug` output or `statmsg config`.

use std::path::Path;

use super::{invalid, ConfigError};

/// A value that must not be shown: its `Debug` is `***` (`""` when empty, so a missing secret
/// is still visible as missing).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the one place that hands it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// Whether a librdkafka property holds a secret (a password, a token, a private key).
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('_', ".");
    key.contains("password")
        || key.contains("secret")
        || key.contains("token")
        || key.contains("passphrase")
        || key.contains("private.key")
        || key.ends_with("key.pem")
        || key == "sasl.oauthbearer.config"
        || key == "sasl.jaas.config"
}

/// Reads a secret from `path`: the whole file but a final line end (a password may hold spaces;
/// an editor's newline is not part of it). An empty or unreadable file is an error naming `key`
/// and the path, never the content.
pub fn read_secret_file(key: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    // Windows editors and PowerShell 5 write a byte order mark first: not part of the secret.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    if value.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = Secret::new("hunter2".into());
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn secret_properties_are_recognised_in_either_spelling() {
        for key in [
            "sasl.password",
            "sasl_password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
        ] {
            assert!(is_secret_property(key), "{key}");
        }
        for key in ["sasl.username", "security.protocol", "ssl.ca.location", "sasl.mechanisms"] {
            assert!(!is_secret_property(key), "{key}");
        }
    }

    #[test]
    fn a_secret_file_gives_its_content_without_the_final_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "\u{feff}pass word \r\n").unwrap();
        assert_eq!(read_secret_file("kafka.secret_files", &path).unwrap().expose(), "pass word ");
        std::fs::write(&path, "").unwrap();
        let empty = read_secret_file("kafka.secret_files", &path).unwrap_err().to_string();
        assert!(empty.contains("is empty") && empty.contains("kafka.secret_files"), "{empty}");
        let missing =
            read_secret_file("influxdb.password_file", &dir.path().join("absent")).unwrap_err().to_string();
        assert!(missing.contains("absent"), "{missing}");
    }
}
