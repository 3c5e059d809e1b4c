//! ConfigMgr's log writer, for the Windows build under test (run under Wine by `.ci/run`, see
//! `tests/e2e_windows_wine.rs`): appends numbered server-format lines to `WsyncMgr.log` (every
//! seventh in two writes, a moment apart) and rolls it to `WsyncMgr.lo_` with `MoveFileExW`, as
//! ConfigMgr does, while the collector reads it.
//!
//! Every roll is made while a handle opened the collector's way
//! (`statmsg_collect::durable::open_shared`) is held on the log, so the rename proves the
//! collector's sharing modes never block ConfigMgr; and once, first, a handle without delete
//! sharing must make the rename fail (the check has teeth). Before a roll the writer waits for
//! `go-<k-1>` in the handshake folder, written by the test once the records rolled away by the
//! previous roll are in Kafka (ConfigMgr keeps one `.lo_`: a second roll before it was read loses
//! it by design, which is not what the test counts); after roll `k` it writes `rolled-<k>` with
//! the number of records written before it.
//!
//! Usage: `win_roll_writer LOG_DIR RECORDS ROLL_BYTES HANDSHAKE_DIR`.

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match windows::main(&args[1..]) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("win_roll_writer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!("win_roll_writer is a Windows program: build it with --target x86_64-pc-windows-gnu");
    std::process::ExitCode::FAILURE
}

#[cfg(windows)]
mod windows {
    use std::io::Write as _;
    use std::os::windows::ffi::OsStrExt as _;
    use std::os::windows::fs::OpenOptionsExt as _;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use statmsg_collect::durable::open_shared;

    /// How long a roll waits for the test to say the previous `.lo_` was read.
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(120);

    pub fn main(args: &[String]) -> Result<(), String> {
        let [dir, records, roll_bytes, handshake] = args else {
            return Err("usage: win_roll_writer LOG_DIR RECORDS ROLL_BYTES HANDSHAKE_DIR".into());
        };
        let dir = PathBuf::from(dir);
        let records: usize = records.parse().map_err(|e| format!("RECORDS: {e}"))?;
        let roll_bytes: u64 = roll_bytes.parse().map_err(|e| format!("ROLL_BYTES: {e}"))?;
        let handshake = PathBuf::from(handshake);
        let log = dir.join("WsyncMgr.log");
        let rolled = dir.join("WsyncMgr.lo_");

        let mut rolls = 0;
        let mut retries = 0;
        let mut file = open_append(&log)?;
        let mut written = 0u64;
        for n in 0..records {
            let text = line(n);
            if n % 7 == 0 {
                let cut = text.len() / 3;
                file.write_all(&text.as_bytes()[..cut]).map_err(|e| format!("write: {e}"))?;
                file.flush().map_err(|e| format!("flush: {e}"))?;
                std::thread::sleep(Duration::from_micros(300));
                file.write_all(&text.as_bytes()[cut..]).map_err(|e| format!("write: {e}"))?;
            } else {
                file.write_all(text.as_bytes()).map_err(|e| format!("write: {e}"))?;
            }
            written += text.len() as u64;
            if written >= roll_bytes && n + 1 < records {
                if rolls > 0 {
                    wait_for(&handshake.join(format!("go-{rolls}")))?;
                }
                drop(file);
                if rolls == 0 {
                    check_that_a_handle_without_delete_sharing_blocks(&log, &rolled)?;
                    report_replacing_an_open_file(&dir)?;
                }
                // The collector's way of opening the log, held across the rename.
                let held = open_shared(&log).map_err(|e| format!("open_shared {}: {e}", log.display()))?;
                retries += roll(&log, &rolled).map_err(|e| format!("roll {}: {e}", rolls + 1))?;
                drop(held);
                rolls += 1;
                std::fs::write(handshake.join(format!("rolled-{rolls}")), (n + 1).to_string())
                    .map_err(|e| format!("handshake: {e}"))?;
                file = open_append(&log)?;
                written = 0;
            }
        }
        file.flush().map_err(|e| format!("flush: {e}"))?;
        std::fs::write(handshake.join("done"), records.to_string()).map_err(|e| format!("handshake: {e}"))?;
        println!("wrote {records} records, rolled {rolls} times; {retries} renames retried");
        Ok(())
    }

    /// A line of about 200 bytes carrying its number (as in the Linux end-to-end tests).
    fn line(n: usize) -> String {
        let ms = n * 7;
        let (s, ms) = (ms / 1000, ms % 1000);
        format!(
            "rec-{n:06} Synchronizing update 1a2b3c4d-0000-4000-8000-{n:012} - 2025-03 Cumulative Update  \
             $$<SMS_WSUS_SYNC_MANAGER><03-01-2025 {:02}:{:02}:{:02}.{ms:03}-60><thread=4242 (0x1092)>\r\n",
            8 + s / 3600,
            s / 60 % 60,
            s % 60
        )
    }

    fn open_append(path: &Path) -> Result<std::fs::File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("open {}: {e}", path.display()))
    }

    fn wait_for(path: &Path) -> Result<(), String> {
        let started = Instant::now();
        while !path.exists() {
            if started.elapsed() > HANDSHAKE_TIMEOUT {
                return Err(format!("no {} after {HANDSHAKE_TIMEOUT:?}", path.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// A reader without `FILE_SHARE_DELETE` must make the roll fail: otherwise this writer would
    /// prove nothing about the collector's sharing modes.
    fn check_that_a_handle_without_delete_sharing_blocks(log: &Path, rolled: &Path) -> Result<(), String> {
        const FILE_SHARE_READ_WRITE: u32 = 0x1 | 0x2;
        const ERROR_SHARING_VIOLATION: i32 = 32;
        let blocking = std::fs::OpenOptions::new()
            .read(true)
            .share_mode(FILE_SHARE_READ_WRITE)
            .open(log)
            .map_err(|e| format!("open without delete sharing: {e}"))?;
        let outcome = move_file(log, rolled);
        drop(blocking);
        match outcome {
            Err(e) if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION) => Ok(()),
            Err(e) => {
                Err(format!("a handle without delete sharing failed the rename with another error: {e}"))
            }
            Ok(()) => Err(
                "a handle without delete sharing did not block the rename: sharing modes are not enforced"
                    .into(),
            ),
        }
    }

    /// How often a roll is tried again after `ERROR_ACCESS_DENIED`, 10 ms apart.
    const ROLL_TRIES: usize = 200;

    /// Rolls `log` to `rolled`; returns how many tries failed with `ERROR_ACCESS_DENIED` first.
    /// Replacing a `.lo_` that a reader has open (the collector reads one for a few milliseconds
    /// at a time) is refused by Windows without POSIX rename semantics: the writer tries again,
    /// and says how often it had to.
    fn roll(log: &Path, rolled: &Path) -> Result<usize, String> {
        const ERROR_ACCESS_DENIED: i32 = 5;
        for retry in 0..ROLL_TRIES {
            match move_file(log, rolled) {
                Ok(()) => return Ok(retry),
                Err(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED) => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("still denied after {ROLL_TRIES} tries"))
    }

    /// Says (does not judge) whether a file held open the collector's way can be replaced by a
    /// rename, as a roll replaces the previous `.lo_` (on files of its own, outside the globs).
    fn report_replacing_an_open_file(dir: &Path) -> Result<(), String> {
        let (target, source) = (dir.join("probe-target.tmp"), dir.join("probe-source.tmp"));
        std::fs::write(&target, "target").map_err(|e| format!("probe: {e}"))?;
        std::fs::write(&source, "source").map_err(|e| format!("probe: {e}"))?;
        let held = open_shared(&target).map_err(|e| format!("open_shared {}: {e}", target.display()))?;
        let outcome = move_file(&source, &target);
        drop(held);
        match outcome {
            Ok(()) => println!("replacing a file held open the collector's way: allowed"),
            Err(e) => println!("replacing a file held open the collector's way: refused ({e})"),
        }
        let _ = std::fs::remove_file(&source);
        std::fs::remove_file(&target).map_err(|e| format!("probe: {e}"))
    }

    /// `MoveFileExW(from, to, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)`, as ConfigMgr
    /// rolls its logs.
    #[allow(unsafe_code)]
    fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
        use windows_sys::Win32::Storage::FileSystem::{
            MoveFileExW, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH,
        };
        let wide = |p: &Path| p.as_os_str().encode_wide().chain(Some(0)).collect::<Vec<u16>>();
        let (from, to) = (wide(from), wide(to));
        // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
        let ok = unsafe {
            MoveFileExW(from.as_ptr(), to.as_ptr(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)
        };
        if ok == 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
