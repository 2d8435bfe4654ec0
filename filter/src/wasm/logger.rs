//! The `log` crate's macros write to Envoy's log (`proxy_log`, shown as
//! `wasm log <plugin> <root_id> <vm_id>: …`) at info level and above; a panic, which aborts the
//! VM, is logged as critical first so the reason is not lost.

use super::host;

struct EnvoyLog;

/// The ABI's log levels.
fn level(l: log::Level) -> u32 {
    match l {
        log::Level::Trace => 0,
        log::Level::Debug => 1,
        log::Level::Info => 2,
        log::Level::Warn => 3,
        log::Level::Error => 4,
    }
}
const CRITICAL: u32 = 5;

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            host::log(level(record.level()), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static LOGGER: EnvoyLog = EnvoyLog;

/// Installs the logger and the panic hook; later calls do nothing.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
        std::panic::set_hook(Box::new(|info| {
            host::log(CRITICAL, &format!("l7gate: panicked: {info}"))
        }));
    }
}
