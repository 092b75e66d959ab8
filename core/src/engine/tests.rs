//! The engine in-process, on both drivers: each test starts a gateway (a real [`Worker`] serving
//! a loopback listener through `conn::serve`), a scripted upstream and a raw client inside one
//! monoio runtime, drives them with exact bytes and checks what each side received. Every test
//! runs once on epoll and once on io_uring (skipped, with the reason recorded, where io_uring is
//! unavailable) under a hard deadline, so a hang fails instead of blocking the suite.
//!
//! - `harness`: the runtimes, the deadline, the gateway under test and its configuration;
//! - `upstream`: the scripted upstream (reads requests, writes scripted bytes, records both);
//! - `client`: the raw client and the parsers of its answers (status, headers, body, events);
//! - `framing`, `pool`, `event_streams`, `acl`, `errors`, `timeouts`: the cases.
//!
//! [`Worker`]: super::worker::Worker

/// Declares, for each named `async fn` of the enclosing module, a module of that name holding
/// two `#[test]`s, `epoll` and `io_uring`, that run it on each driver
/// (`engine::tests::framing::head_request::epoll`, …).
macro_rules! on_both_drivers {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[test]
            fn epoll() {
                $crate::engine::tests::harness::run_on(
                    $crate::engine::tests::harness::Driver::Epoll,
                    module_path!(),
                    super::$case,
                );
            }

            #[test]
            fn io_uring() {
                $crate::engine::tests::harness::run_on(
                    $crate::engine::tests::harness::Driver::IoUring,
                    module_path!(),
                    super::$case,
                );
            }
        }
    )+};
}

mod client;
mod harness;
mod upstream;

mod acl;
mod errors;
mod event_streams;
mod framing;
mod pool;
mod timeouts;
