//! Containment of host panics reached by hostile input.
//!
//! Owns [`contain`]: run a closure, and if it panics (a bug in a parser or kernel that a hostile
//! module, output or query reached), return an error instead of unwinding further — without the
//! panic message or a backtrace on the terminal (the message may quote the hostile bytes, and a
//! job must not be able to fill the operator's console). Panics outside `contain` print as usual.
//! It must never swallow a panic silently: the caller gets an error naming where it happened.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<u32> = const { Cell::new(0) };
    static WHERE: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

fn install() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if QUIET.with(Cell::get) > 0 {
                // Remember where (file and line of host code), never the payload.
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                WHERE.with(|w| *w.borrow_mut() = at);
                return;
            }
            previous(info);
        }));
    });
}

/// A contained panic: where in the host it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a host bug was reached (contained panic at {location})")]
pub struct Contained {
    /// `file:line` of the panic in host code.
    pub location: String,
}

/// Runs `f`; a panic inside becomes [`Contained`], printed nowhere.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, Contained> {
    install();
    QUIET.with(|q| q.set(q.get() + 1));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get().saturating_sub(1)));
    r.map_err(|_| Contained {
        location: WHERE
            .with(|w| w.borrow_mut().take())
            .unwrap_or_else(|| "unknown".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors_with_a_location() {
        let e = contain(|| -> u32 { panic!("secret value 42") }).unwrap_err();
        assert!(e.location.contains("contain.rs"), "{e}");
        assert!(!e.to_string().contains("42"));
        assert_eq!(contain(|| 7).unwrap(), 7);
        // Nested containment unwinds to the innermost.
        let outer = contain(|| contain(|| -> () { panic!("inner") }).is_err()).unwrap();
        assert!(outer);
    }
}
