//! OpenOnload detection and the driver choice that follows from it.
//!
//! OpenOnload accelerates plain BSD socket calls by intercepting them through `LD_PRELOAD`
//! (`onload <cmd>` sets `LD_PRELOAD=libonload.so`). `io_uring` submits socket operations inside
//! the kernel, around the interposed library, so under Onload an `io_uring` connection silently
//! runs on the ordinary kernel stack. Hence: detect Onload at start-up, log it, and force the
//! mio/epoll driver.
//!
//! Detection: `LD_PRELOAD` naming `libonload`, or the symbol `onload_is_present` resolvable with
//! `dlsym(RTLD_DEFAULT, ...)`. The symbol is also exported by Onload's extension stub library
//! (`libonload_ext`), whose stub returns 0 when Onload is not loaded, so when the symbol is found
//! it is called and must answer non-zero.

use std::ffi::CStr;

use crate::socket::DriverKind;

/// What [`detect`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnloadStatus {
    /// `LD_PRELOAD` mentions `libonload`.
    pub ld_preload: bool,
    /// `dlsym(RTLD_DEFAULT, "onload_is_present")` found the symbol.
    pub symbol_found: bool,
    /// Calling `onload_is_present()` returned non-zero.
    pub symbol_says_present: bool,
}

impl OnloadStatus {
    /// Onload is accelerating this process's sockets.
    pub fn present(&self) -> bool {
        self.ld_preload || self.symbol_says_present
    }
}

/// Whether an `LD_PRELOAD` value (colon- or space-separated) names `libonload`.
pub fn ld_preload_names_onload(value: &str) -> bool {
    value.split([':', ' ']).filter(|s| !s.is_empty()).any(|p| {
        let file = p.rsplit('/').next().unwrap_or(p);
        file.starts_with("libonload") && !file.starts_with("libonload_ext")
    })
}

/// Look for `onload_is_present` in the process and call it if found: (found, returned non-zero).
fn probe_symbol() -> (bool, bool) {
    const NAME: &CStr = c"onload_is_present";
    // SAFETY: `RTLD_DEFAULT` searches the global symbol scope; NAME is a valid NUL-terminated
    // string. dlsym has no other preconditions.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, NAME.as_ptr()) };
    if sym.is_null() {
        return (false, false);
    }
    // SAFETY: Onload's extension API declares `int onload_is_present(void)`; the symbol found
    // under that name in either libonload or libonload_ext has that signature.
    let f: extern "C" fn() -> libc::c_int = unsafe { std::mem::transmute(sym) };
    (true, f() != 0)
}

/// Detect OpenOnload in this process.
pub fn detect() -> OnloadStatus {
    let ld_preload = std::env::var("LD_PRELOAD")
        .map(|v| ld_preload_names_onload(&v))
        .unwrap_or(false);
    let (symbol_found, symbol_says_present) = probe_symbol();
    OnloadStatus {
        ld_preload,
        symbol_found,
        symbol_says_present,
    }
}

/// The driver to use given the configured one and an Onload status, with the reason.
pub fn choose_driver_for(
    status: &OnloadStatus,
    configured: DriverKind,
) -> (DriverKind, &'static str) {
    match (status.present(), configured) {
        (true, DriverKind::IoUring) => (
            DriverKind::Mio,
            "OpenOnload is present and io_uring would bypass it: using the mio/epoll driver",
        ),
        (true, DriverKind::Mio) => (
            DriverKind::Mio,
            "OpenOnload is present: mio/epoll driver, accelerated",
        ),
        (true, DriverKind::Std) => (
            DriverKind::Std,
            "OpenOnload is present: blocking std driver as configured (accelerated)",
        ),
        (false, k) => (k, "OpenOnload not present: driver as configured"),
    }
}

/// Detect Onload and choose the driver: forces mio/epoll when Onload is present and io_uring was
/// configured. Logs the decision.
pub fn choose_driver(configured: DriverKind) -> (DriverKind, &'static str) {
    let status = detect();
    let (kind, reason) = choose_driver_for(&status, configured);
    if kind != configured {
        tracing::warn!(configured = %configured, chosen = %kind, ?status, "{reason}");
    } else {
        tracing::info!(driver = %kind, onload = status.present(), "{reason}");
    }
    (kind, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ld_preload_parsing() {
        assert!(ld_preload_names_onload("libonload.so"));
        assert!(ld_preload_names_onload("/usr/lib64/libonload.so.1"));
        assert!(ld_preload_names_onload(
            "libfoo.so:/opt/onload/lib/libonload.so"
        ));
        assert!(ld_preload_names_onload("libfoo.so libonload.so"));
        assert!(!ld_preload_names_onload(""));
        assert!(!ld_preload_names_onload("libfoo.so"));
        assert!(!ld_preload_names_onload("/opt/libonload_ext.so"));
        assert!(!ld_preload_names_onload("/opt/libonload/libc.so"));
    }

    #[test]
    fn onload_forces_mio_instead_of_io_uring() {
        let on = OnloadStatus {
            ld_preload: true,
            ..Default::default()
        };
        assert_eq!(
            choose_driver_for(&on, DriverKind::IoUring).0,
            DriverKind::Mio
        );
        assert_eq!(choose_driver_for(&on, DriverKind::Mio).0, DriverKind::Mio);
        assert_eq!(choose_driver_for(&on, DriverKind::Std).0, DriverKind::Std);
        let sym = OnloadStatus {
            symbol_found: true,
            symbol_says_present: true,
            ..Default::default()
        };
        assert_eq!(
            choose_driver_for(&sym, DriverKind::IoUring).0,
            DriverKind::Mio
        );
        let stub = OnloadStatus {
            symbol_found: true,
            symbol_says_present: false,
            ..Default::default()
        };
        assert!(!stub.present());
        assert_eq!(
            choose_driver_for(&stub, DriverKind::IoUring).0,
            DriverKind::IoUring
        );
    }

    #[test]
    fn not_present_on_this_machine_without_preload() {
        // The test binary is not run under onload (unless someone does so deliberately).
        let s = detect();
        if std::env::var("LD_PRELOAD").is_err() {
            assert!(!s.ld_preload);
            assert!(
                !s.symbol_found,
                "onload_is_present resolvable without LD_PRELOAD"
            );
            assert_eq!(choose_driver(DriverKind::IoUring).0, DriverKind::IoUring);
        }
    }
}
