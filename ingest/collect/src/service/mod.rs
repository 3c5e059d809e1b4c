//! The collector as a Windows service: `statmsg service install|uninstall|start|stop` talk to the
//! service control manager, and `statmsg service run` (what the service manager starts) runs the
//! collector until the service is stopped, on the same one shutdown path as Ctrl-C.
//!
//! What the service is, decided here and tested anywhere: its name and description, the command
//! line the service manager starts, the recovery actions (restart on failure, also after an
//! error exit) and the account. Talking to the service manager is the `cfg(windows)` module
//! [`windows`]; on other systems every action says that services are Windows-only (Linux hosts
//! use the systemd unit in `deploy/linux/`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use statmsg_plumbing::config::Secret;
use statmsg_plumbing::shutdown::Shutdown;

#[cfg(windows)]
pub mod windows;

/// The service's name unless `--name` says otherwise (several collectors, one per configuration,
/// can live side by side under different names).
pub const DEFAULT_NAME: &str = "statmsg";

/// Shown in the Services console.
pub const DESCRIPTION: &str =
    "statmsg collector: tails the ConfigMgr logs (WsyncMgr.log and others) of this site \
server and publishes software-update synchronization records to Kafka.";

/// Restarts after a failure: soon, later, then every five minutes; the count resets after a day
/// without failure.
pub const RESTART_DELAYS: [Duration; 3] =
    [Duration::from_secs(10), Duration::from_secs(60), Duration::from_secs(300)];
pub const FAILURE_RESET: Duration = Duration::from_secs(24 * 3600);

/// How long `start` and `stop` wait for the service to get there.
pub const STATE_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A service manager request that failed, saying which and why.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("Windows services exist only on Windows; on Linux run `statmsg collect` from the systemd unit in deploy/linux/")]
    NotWindows,
    #[error("{action} service {name:?}")]
    Manager {
        action: &'static str,
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("service {name:?} stopped right after it started (exit code {exit_code}): its log says why")]
    StoppedAtOnce { name: String, exit_code: String },
    #[error("service {name:?} did not reach {state} within {timeout:?} (now {now})")]
    Timeout { name: String, state: &'static str, timeout: Duration, now: String },
    #[error("the configuration path {path} must be absolute (a service starts in the system folder)")]
    RelativeConfig { path: PathBuf },
    #[error("cannot read the service account's password from {path}: {source}")]
    Password {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `statmsg service install` sets up.
#[derive(Debug, Clone)]
pub struct Install {
    pub name: String,
    /// The configuration file the service runs with (absolute).
    pub config: PathBuf,
    /// The account the service runs as (`None`: LocalSystem), e.g. `NT AUTHORITY\NetworkService`
    /// or a group managed service account `DOMAIN\statmsg$`.
    pub account: Option<String>,
    /// Its password, read from a file or the environment, never from the command line.
    pub password: Option<Secret>,
}

impl Install {
    /// Checks what would only fail later, when the service starts.
    pub fn new(
        name: String,
        config: PathBuf,
        account: Option<String>,
        password: Option<Secret>,
    ) -> Result<Install, ServiceError> {
        if !config.is_absolute() {
            return Err(ServiceError::RelativeConfig { path: config });
        }
        Ok(Install { name, config, account, password })
    }

    /// The arguments the service manager starts `statmsg.exe` with.
    pub fn launch_arguments(&self) -> Vec<OsString> {
        vec![
            "service".into(),
            "run".into(),
            "--name".into(),
            self.name.clone().into(),
            "--config".into(),
            self.config.clone().into_os_string(),
        ]
    }
}

/// Reads a password file: its first line, without the line end (so an editor's newline is not
/// part of the password).
pub fn read_password(path: &Path) -> Result<Secret, ServiceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ServiceError::Password { path: path.to_owned(), source })?;
    // Windows editors and PowerShell 5 write a byte order mark first: not part of the password.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(Secret::new(text.lines().next().unwrap_or_default().to_owned()))
}

/// Where the service writes its log: `logs/` beside its configuration file (a service has no
/// console); files roll daily, the last [`LOG_FILES_KEPT`] are kept.
pub fn log_dir(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join("logs")
}

pub const LOG_FILES_KEPT: usize = 14;

/// Runs `collect` as the service `name` until the service manager stops it. Returns when the
/// service has stopped; an error of `collect` is reported to the service manager as a failure,
/// so its recovery actions restart the service.
pub fn run<F>(name: &str, collect: F) -> Result<(), ServiceError>
where
    F: FnOnce(Shutdown) -> Result<(), String> + Send + 'static,
{
    #[cfg(windows)]
    {
        windows::run(name, collect)
    }
    #[cfg(not(windows))]
    {
        let _ = (name, collect);
        Err(ServiceError::NotWindows)
    }
}

/// Installs the service (automatic start, delayed; restart on failure). Returns the settings the
/// service manager does not support (none on Windows; Wine lacks delayed start and recovery).
pub fn install(install: &Install) -> Result<Vec<String>, ServiceError> {
    #[cfg(windows)]
    {
        windows::install(install)
    }
    #[cfg(not(windows))]
    {
        let _ = install;
        Err(ServiceError::NotWindows)
    }
}

/// Stops the service if it runs, and removes it.
pub fn uninstall(name: &str) -> Result<(), ServiceError> {
    #[cfg(windows)]
    {
        windows::uninstall(name)
    }
    #[cfg(not(windows))]
    {
        let _ = name;
        Err(ServiceError::NotWindows)
    }
}

/// Starts the service and waits until it runs.
pub fn start(name: &str) -> Result<(), ServiceError> {
    #[cfg(windows)]
    {
        windows::start(name)
    }
    #[cfg(not(windows))]
    {
        let _ = name;
        Err(ServiceError::NotWindows)
    }
}

/// Stops the service and waits until it stopped.
pub fn stop(name: &str) -> Result<(), ServiceError> {
    #[cfg(windows)]
    {
        windows::stop(name)
    }
    #[cfg(not(windows))]
    {
        let _ = name;
        Err(ServiceError::NotWindows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_runs_the_configuration_it_was_installed_with() {
        let config = std::env::temp_dir().join("statmsg.toml");
        let install = Install::new("statmsg-lab".into(), config.clone(), None, None).unwrap();
        let args: Vec<String> =
            install.launch_arguments().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["service", "run", "--name", "statmsg-lab", "--config", &config.to_string_lossy()]);
        assert!(matches!(
            Install::new("x".into(), "statmsg.toml".into(), None, None),
            Err(ServiceError::RelativeConfig { .. })
        ));
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "\u{feff}s3cret with spaces\r\nignored\n").unwrap();
        assert_eq!(read_password(&path).unwrap().expose(), "s3cret with spaces");
        let missing = read_password(&dir.path().join("absent")).unwrap_err().to_string();
        assert!(missing.contains("absent"), "{missing}");
    }

    #[test]
    fn logs_go_beside_the_configuration() {
        let config = Path::new("/etc/statmsg/statmsg.toml");
        assert_eq!(log_dir(config), Path::new("/etc/statmsg/logs"));
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_a_service_is_refused_with_the_linux_way() {
        let error = start(DEFAULT_NAME).unwrap_err().to_string();
        assert!(error.contains("deploy/linux"), "{error}");
    }
}
