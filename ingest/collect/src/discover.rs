//! Where ConfigMgr writes its logs and which site this server is, read from the registry when
//! `[collect]` leaves `paths` or `site` empty, so that a collector on a site server works with
//! an empty configuration. What is read and how it becomes paths is decided here, over any
//! [`Registry`] (tested with a map); the Windows registry reader is the small `cfg(windows)`
//! module at the end. Elsewhere nothing is found.
//!
//! ConfigMgr keeps (see `log-formats.md`, section 4):
//! - `HKLM\SOFTWARE\Microsoft\SMS\Identification`: `Site Code`, and the installation directory;
//! - `HKLM\SOFTWARE\Microsoft\SMS\Tracing\<COMPONENT>`: `TraceFilename`, the component's log;
//! - `HKLM\SOFTWARE\Microsoft\SMS\Setup`: `Installation Directory` (older sites);
//! - WSUS, `HKLM\SOFTWARE\Microsoft\Update Services\Server\Setup`: `TargetDir`, whose
//!   `LogFiles\SoftwareDistribution.log` is WSUS's own log.

use statmsg_plumbing::config::raw::RawCollect;

/// Read access to `HKEY_LOCAL_MACHINE` string values.
pub trait Registry {
    /// The string value `value` of the key `key` (a path below `HKEY_LOCAL_MACHINE`).
    fn string(&self, key: &str, value: &str) -> Option<String>;
}

const IDENTIFICATION: &str = r"SOFTWARE\Microsoft\SMS\Identification";
const SETUP: &str = r"SOFTWARE\Microsoft\SMS\Setup";
const WSUS_SYNC_TRACING: &str = r"SOFTWARE\Microsoft\SMS\Tracing\SMS_WSUS_SYNC_MANAGER";
const WSUS_SETUP: &str = r"SOFTWARE\Microsoft\Update Services\Server\Setup";

/// The ConfigMgr logs statmsg reads, as name stems: `X.log`, the rolled `X.lo_` and history
/// files `X-<date>-<time>.log` all start with the stem.
const COMPONENT_LOGS: [&str; 4] = ["WsyncMgr", "WCM", "SMSProv", "SMSDBMON"];

/// What the registry told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub site: Option<String>,
    /// The ConfigMgr log folder, with forward slashes, and the registry value it came from.
    pub logs: Option<(String, &'static str)>,
    /// WSUS's `SoftwareDistribution.log`, when WSUS is installed here.
    pub wsus_log: Option<String>,
}

/// Reads what ConfigMgr and WSUS say about this server.
pub fn find(registry: &dyn Registry) -> Found {
    let site =
        registry.string(IDENTIFICATION, "Site Code").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let from_tracing = registry.string(WSUS_SYNC_TRACING, "TraceFilename").and_then(|file| {
        let file = forward_slashes(&file);
        file.rfind('/').map(|slash| file[..slash].to_owned())
    });
    let from_install = |key: &'static str, value: &'static str| {
        registry.string(key, value).filter(|d| !d.trim().is_empty()).map(|d| join(&d, "Logs"))
    };
    let logs = from_tracing
        .map(|dir| (dir, r"Tracing\SMS_WSUS_SYNC_MANAGER\TraceFilename"))
        .or_else(|| {
            from_install(IDENTIFICATION, "Installation Directory")
                .map(|d| (d, r"Identification\Installation Directory"))
        })
        .or_else(|| {
            from_install(SETUP, "Installation Directory").map(|d| (d, r"Setup\Installation Directory"))
        });
    let wsus_log = registry
        .string(WSUS_SETUP, "TargetDir")
        .filter(|d| !d.trim().is_empty())
        .map(|d| join(&join(&d, "LogFiles"), "SoftwareDistribution.log"));
    Found { site, logs, wsus_log }
}

/// Fills what `collect` leaves empty from `found`; returns what was filled, for the log.
pub fn fill(collect: &mut RawCollect, found: &Found) -> Vec<String> {
    let mut filled = Vec::new();
    if collect.paths.is_empty() {
        if let Some((dir, from)) = &found.logs {
            let dir = glob::Pattern::escape(dir);
            collect.paths = COMPONENT_LOGS.iter().map(|stem| format!("{dir}/{stem}*.lo[g_]")).collect();
            filled.push(format!("collect.paths: the ConfigMgr logs in {dir} (registry: {from})"));
        }
        if let Some(wsus_log) = &found.wsus_log {
            collect.paths.push(glob::Pattern::escape(wsus_log));
            filled.push(format!("collect.paths: WSUS's {wsus_log} (registry: Update Services TargetDir)"));
        }
    }
    if collect.site.is_empty() {
        if let Some(site) = &found.site {
            collect.site.clone_from(site);
            filled.push(format!("collect.site: {site} (registry: Identification\\Site Code)"));
        }
    }
    filled
}

/// What this machine's registry tells (nothing but on Windows).
pub fn this_machine() -> Found {
    #[cfg(windows)]
    {
        find(&local_machine::LocalMachine)
    }
    #[cfg(not(windows))]
    {
        Found::default()
    }
}

fn forward_slashes(path: &str) -> String {
    path.trim().replace('\\', "/")
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", forward_slashes(dir).trim_end_matches('/'))
}

#[cfg(windows)]
mod local_machine {
    /// `HKEY_LOCAL_MACHINE`, in the 64-bit view (statmsg is a 64-bit program).
    pub struct LocalMachine;

    impl super::Registry for LocalMachine {
        fn string(&self, key: &str, value: &str) -> Option<String> {
            let hklm = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE);
            hklm.open_subkey(key).ok()?.get_value::<String, _>(value).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Map(HashMap<(&'static str, &'static str), &'static str>);

    impl Registry for Map {
        fn string(&self, key: &str, value: &str) -> Option<String> {
            self.0.iter().find(|((k, v), _)| *k == key && *v == value).map(|(_, s)| (*s).to_owned())
        }
    }

    fn site_server() -> Map {
        Map(HashMap::from([
            ((IDENTIFICATION, "Site Code"), "PS1"),
            ((IDENTIFICATION, "Installation Directory"), r"C:\Program Files\Microsoft Configuration Manager"),
            ((WSUS_SYNC_TRACING, "TraceFilename"), r"D:\SCCM Logs\wsyncmgr.log"),
            ((WSUS_SETUP, "TargetDir"), r"C:\Program Files\Update Services\"),
        ]))
    }

    #[test]
    fn the_sync_managers_trace_file_names_the_log_folder() {
        let found = find(&site_server());
        assert_eq!(found.site.as_deref(), Some("PS1"));
        assert_eq!(found.logs.as_ref().map(|(d, _)| d.as_str()), Some("D:/SCCM Logs"));
        assert_eq!(
            found.wsus_log.as_deref(),
            Some("C:/Program Files/Update Services/LogFiles/SoftwareDistribution.log")
        );
    }

    #[test]
    fn without_tracing_the_installation_directory_has_the_logs() {
        let mut registry = site_server();
        registry.0.remove(&(WSUS_SYNC_TRACING, "TraceFilename"));
        let found = find(&registry);
        assert_eq!(
            found.logs,
            Some((
                "C:/Program Files/Microsoft Configuration Manager/Logs".to_owned(),
                r"Identification\Installation Directory"
            ))
        );
        registry.0.remove(&(IDENTIFICATION, "Installation Directory"));
        registry.0.insert((SETUP, "Installation Directory"), r"E:\ConfigMgr");
        assert_eq!(find(&registry).logs.map(|(d, _)| d), Some("E:/ConfigMgr/Logs".to_owned()));
    }

    #[test]
    fn only_what_the_configuration_leaves_empty_is_filled() {
        let found = find(&site_server());
        let mut collect = RawCollect { paths: Vec::new(), ..RawCollect::default() };
        let filled = fill(&mut collect, &found);
        assert_eq!(filled.len(), 3, "{filled:?}");
        assert_eq!(collect.site, "PS1");
        assert_eq!(collect.paths[0], "D:/SCCM Logs/WsyncMgr*.lo[g_]");
        assert_eq!(collect.paths.len(), COMPONENT_LOGS.len() + 1);
        let pattern = glob::Pattern::new(&collect.paths[0]).unwrap();
        for name in ["WsyncMgr.log", "WsyncMgr.lo_", "WsyncMgr-20240301-101500.log"] {
            assert!(pattern.matches(&format!("D:/SCCM Logs/{name}")), "{name}");
        }
        assert!(!pattern.matches("D:/SCCM Logs/WsyncMgr.txt"));

        let mut configured = RawCollect {
            paths: vec!["/logs/WsyncMgr.log".into()],
            site: "CS1".into(),
            ..RawCollect::default()
        };
        assert!(fill(&mut configured, &found).is_empty());
        assert_eq!((configured.paths.len(), configured.site.as_str()), (1, "CS1"));
    }

    #[test]
    fn glob_characters_in_a_folder_name_are_taken_literally() {
        let found = Found { logs: Some(("C:/Logs [old]".into(), "test")), ..Found::default() };
        let mut collect = RawCollect { paths: Vec::new(), ..RawCollect::default() };
        fill(&mut collect, &found);
        assert!(glob::Pattern::new(&collect.paths[0]).unwrap().matches("C:/Logs [old]/WsyncMgr.log"));
    }

    #[test]
    fn an_empty_registry_finds_nothing() {
        assert_eq!(find(&Map(HashMap::new())), Found::default());
    }
}
