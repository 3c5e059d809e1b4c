//! The service control manager side of [`super`], on Windows only (`windows-service`).

use std::ffi::OsString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use windows_service::service::Service;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo,
    ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::{Install, ServiceError, DESCRIPTION, FAILURE_RESET, RESTART_DELAYS, STATE_CHANGE_TIMEOUT};
use statmsg_plumbing::shutdown::Shutdown;

type Collect = Box<dyn FnOnce(Shutdown) -> Result<(), String> + Send>;

/// Handed from [`run`] to the service's main function, which the service manager calls on a
/// thread of its own with no way to pass it anything.
static SERVICE: Mutex<Option<(String, Collect)>> = Mutex::new(None);

fn manager_error<'a>(
    action: &'static str,
    name: &'a str,
) -> impl FnOnce(windows_service::Error) -> ServiceError + 'a {
    move |e| ServiceError::Manager { action, name: name.to_owned(), source: Box::new(e) }
}

fn manager(access: ServiceManagerAccess, name: &str) -> Result<ServiceManager, ServiceError> {
    ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT | access)
        .map_err(manager_error("connect to the service manager for", name))
}

pub fn install(install: &Install) -> Result<Vec<String>, ServiceError> {
    let name = install.name.as_str();
    let executable_path = std::env::current_exe().map_err(|e| ServiceError::Manager {
        action: "install",
        name: name.into(),
        source: Box::new(e),
    })?;
    let info = ServiceInfo {
        name: OsString::from(name),
        display_name: OsString::from(format!("statmsg collector ({name})")),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path,
        launch_arguments: install.launch_arguments(),
        dependencies: Vec::new(),
        account_name: install.account.as_ref().map(OsString::from),
        account_password: install.password.as_ref().map(|p| OsString::from(p.expose())),
    };
    let service = manager(ServiceManagerAccess::CREATE_SERVICE, name)?
        // Restart recovery actions need the right to start the service too.
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG
                | ServiceAccess::QUERY_CONFIG
                | ServiceAccess::START
                | ServiceAccess::DELETE,
        )
        .map_err(manager_error("install", name))?;
    let mut unsupported = Vec::new();
    let configured =
        configure(&service, &mut unsupported).map_err(|(action, e)| manager_error(action, name)(e));
    if configured.is_err() {
        // Never leave a service half set up.
        let _ = service.delete();
    }
    configured.map(|()| unsupported)
}

/// Description, delayed start and recovery actions. A setting the service manager does not know
/// (`ERROR_INVALID_LEVEL`: Wine's lacks some) is said in `unsupported`, not failed on.
fn configure(
    service: &Service,
    unsupported: &mut Vec<String>,
) -> Result<(), (&'static str, windows_service::Error)> {
    const ERROR_INVALID_LEVEL: i32 = 124;
    let mut tolerate = |what: &'static str, result: windows_service::Result<()>| match result {
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_INVALID_LEVEL) => {
            unsupported.push(format!("{what}: not supported by this service manager ({e})"));
            Ok(())
        }
        other => other.map_err(|e| (what, e)),
    };
    tolerate("describe", service.set_description(DESCRIPTION))?;
    // After the network and the services a site server needs at boot.
    tolerate("set delayed start of", service.set_delayed_auto_start(true))?;
    let actions = RESTART_DELAYS
        .iter()
        .map(|&delay| ServiceAction { action_type: ServiceActionType::Restart, delay })
        .collect();
    tolerate(
        "set the recovery actions of",
        service.update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
            reboot_msg: None,
            command: None,
            actions: Some(actions),
        }),
    )?;
    // An error exit (a configuration gone bad, a full disk) restarts it too, not only a crash.
    tolerate("restart after an error exit of", service.set_failure_actions_on_non_crash_failures(true))
}

pub fn uninstall(name: &str) -> Result<(), ServiceError> {
    let service = manager(ServiceManagerAccess::empty(), name)?
        .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)
        .map_err(manager_error("open", name))?;
    let state = service.query_status().map_err(manager_error("query", name))?.current_state;
    if state != ServiceState::Stopped {
        service.stop().map_err(manager_error("stop", name))?;
        wait_for(name, ServiceState::Stopped, || service.query_status())?;
    }
    service.delete().map_err(manager_error("remove", name))
}

pub fn start(name: &str) -> Result<(), ServiceError> {
    let service = manager(ServiceManagerAccess::empty(), name)?
        .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::START)
        .map_err(manager_error("open", name))?;
    const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;
    match service.start::<&str>(&[]) {
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_SERVICE_ALREADY_RUNNING) => {
        }
        other => other.map_err(manager_error("start", name))?,
    }
    wait_for(name, ServiceState::Running, || service.query_status())
}

pub fn stop(name: &str) -> Result<(), ServiceError> {
    let service = manager(ServiceManagerAccess::empty(), name)?
        .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)
        .map_err(manager_error("open", name))?;
    const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
    match service.stop() {
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_SERVICE_NOT_ACTIVE) => {
            Ok(())
        }
        other => {
            other.map_err(manager_error("stop", name))?;
            wait_for(name, ServiceState::Stopped, || service.query_status())
        }
    }
}

fn wait_for(
    name: &str,
    wanted: ServiceState,
    query: impl Fn() -> windows_service::Result<ServiceStatus>,
) -> Result<(), ServiceError> {
    let started = Instant::now();
    loop {
        let status = query().map_err(manager_error("query", name))?;
        let now = status.current_state;
        if now == wanted {
            return Ok(());
        }
        if wanted == ServiceState::Running
            && now == ServiceState::Stopped
            && started.elapsed() > Duration::from_secs(1)
        {
            return Err(ServiceError::StoppedAtOnce {
                name: name.to_owned(),
                exit_code: format!("{:?}", status.exit_code),
            });
        }
        if started.elapsed() > STATE_CHANGE_TIMEOUT {
            return Err(ServiceError::Timeout {
                name: name.to_owned(),
                state: if wanted == ServiceState::Running { "running" } else { "stopped" },
                timeout: STATE_CHANGE_TIMEOUT,
                now: format!("{now:?}"),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn run<F>(name: &str, collect: F) -> Result<(), ServiceError>
where
    F: FnOnce(Shutdown) -> Result<(), String> + Send + 'static,
{
    *SERVICE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
        Some((name.to_owned(), Box::new(collect)));
    // Blocks until the service stopped.
    entry::dispatch(name).map_err(manager_error("run as", name))
}

/// The service's entry point: `windows-service` writes the `extern "system"` function the
/// service manager calls (raw pointers, hence the one `unsafe` it contains).
#[allow(unsafe_code)]
mod entry {
    use super::service_main;
    windows_service::define_windows_service!(ffi_service_main, service_main);

    /// Hands this thread to the service manager until the service stopped.
    pub fn dispatch(name: &str) -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(name, ffi_service_main)
    }
}

fn service_main(_arguments: Vec<OsString>) {
    let Some((name, collect)) = SERVICE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() else {
        return;
    };
    if let Err(e) = serve(&name, collect) {
        tracing::error!(service = %name, "the service manager refused a status: {e}");
    }
}

/// The status handle, for the control handler to report a stop in progress.
static STATUS: std::sync::OnceLock<ServiceStatusHandle> = std::sync::OnceLock::new();

fn report(state: ServiceState, accept: ServiceControlAccept, exit_code: ServiceExitCode) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code,
        checkpoint: 0,
        wait_hint: Duration::from_secs(5),
        process_id: None,
    }
}

fn serve(name: &str, collect: Collect) -> windows_service::Result<()> {
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            tracing::info!("stop requested by the service manager");
            if let Some(status) = STATUS.get() {
                // Stopping (saving state) takes up to 2 s: say so, so the manager waits.
                let _ = status.set_service_status(report(
                    ServiceState::StopPending,
                    ServiceControlAccept::empty(),
                    ServiceExitCode::Win32(0),
                ));
            }
            stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = service_control_handler::register(name, handler)?;
    let _ = STATUS.set(status);
    status.set_service_status(report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        ServiceExitCode::Win32(0),
    ))?;
    tracing::info!(service = %name, "running as a Windows service");
    let exit_code = match collect(shutdown) {
        Ok(()) => ServiceExitCode::Win32(0),
        Err(e) => {
            // A service-specific exit code is a failure: the recovery actions restart it.
            tracing::error!(service = %name, "stopped on an error: {e}");
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    status.set_service_status(report(ServiceState::Stopped, ServiceControlAccept::empty(), exit_code))
}
