//! Building a monoio runtime with the driver asked for on the command line (io_uring, epoll, or
//! io_uring with epoll fallback), so every fixture can report which one it actually ran on.

use std::future::Future;
use std::io;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    Uring,
    Epoll,
}

impl FromStr for Driver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Driver::Auto),
            "uring" => Ok(Driver::Uring),
            "epoll" => Ok(Driver::Epoll),
            other => Err(format!(
                "unknown driver {other:?} (expected auto, uring or epoll)"
            )),
        }
    }
}

impl Driver {
    /// The driver a runtime built from this choice will use on this machine.
    pub fn effective(self) -> &'static str {
        match self {
            Driver::Epoll => "epoll",
            Driver::Uring => "uring",
            Driver::Auto if monoio::utils::detect_uring() => "uring",
            Driver::Auto => "epoll",
        }
    }
}

/// Runs `fut` to completion on a fresh single-threaded runtime with timers enabled.
pub fn block_on<F: Future>(driver: Driver, fut: F) -> io::Result<F::Output> {
    match driver {
        Driver::Auto => {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(fut))
        }
        Driver::Uring => {
            let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(fut))
        }
        Driver::Epoll => {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(fut))
        }
    }
}

/// Raises the soft open-files limit to `wanted` (and the hard limit too when we may), so 10,000
/// streams fit; returns the resulting soft limit.
pub fn raise_nofile_limit(wanted: u64) -> u64 {
    let wanted = libc::rlim_t::from(wanted);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < wanted {
            let both = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: wanted.max(lim.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &both) != 0 {
                let soft_only = libc::rlimit {
                    rlim_cur: lim.rlim_max.min(wanted),
                    rlim_max: lim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft_only);
            }
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}
