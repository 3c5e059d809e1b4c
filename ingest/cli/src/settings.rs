//! The whole configuration file as this build validates it, for `statmsg config --config FILE`:
//! the collector's sections always, the consumer's in the central build. Each stage's own
//! `Config::from_raw` does the checking; nothing is validated here.

use statmsg_plumbing::config::{ConfigError, RawConfig};

/// Every stage's validated configuration of one file.
#[derive(Debug)]
pub struct Settings {
    pub collect: statmsg_collect::Config,
    #[cfg(feature = "central")]
    pub consume: statmsg_consume::Config,
}

impl Settings {
    /// Validates `raw` for every stage this build holds; every error names its key.
    pub fn validate(raw: RawConfig) -> Result<Settings, ConfigError> {
        Ok(Settings {
            collect: statmsg_collect::Config::from_raw(&raw)?,
            #[cfg(feature = "central")]
            consume: statmsg_consume::Config::from_raw(raw)?,
        })
    }
}

#[cfg(test)]
#[cfg(feature = "central")]
#[path = "settings_tests.rs"]
mod tests;
