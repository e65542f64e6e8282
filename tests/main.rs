//! Enclave's integration tests: one binary.
//!
//! Cases are data where they can be: hostile modules are `.wat` files under `wat/cases/`, each
//! with its expected outcome in its header (`wat.rs` runs them); SQL cases of the guard and the
//! policy are sqllogictest `.slt` files under `slt/` (`slt.rs`). The rest are Rust tests by
//! concern. When this binary is started with `ENCLAVE_TEST_EXEC=enclave` (or `enclave-audit`) it
//! is that command line instead: the CLI tests run the real entry points in child processes
//! without building the binaries separately.

mod audit;
mod c_guest;
mod cli;
mod dependencies;
mod difference;
mod egress;
mod examples;
mod governance;
mod invisibility;
mod jobs;
mod parties;
mod policy;
mod review;
mod sandbox;
mod sdc;
mod slt;
mod tamper;
mod wat;
mod witness;

use libtest_mimic::{Arguments, Failed, Trial};

/// A trial running `f`; a panic fails it with the panic's message.
pub fn trial(name: &str, f: fn()) -> Trial {
    Trial::test(name, move || run_caught(f))
}

/// Runs `f`, turning a panic into a failure.
pub fn run_caught(f: impl FnOnce() + std::panic::UnwindSafe) -> Result<(), Failed> {
    std::panic::catch_unwind(f).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into());
        Failed::from(msg)
    })
}

/// Trials of the listed test functions, named `module::function`.
#[macro_export]
macro_rules! trials {
    ($($f:ident),* $(,)?) => {
        vec![$($crate::trial(concat!(module_path!(), "::", stringify!($f)).trim_start_matches("enclave::"), $f)),*]
    };
}

fn main() {
    if let Some(which) = std::env::var_os(enclave_tests::EXEC_AS) {
        let args = std::env::args_os();
        let code = match which.to_str() {
            Some("enclave") => enclave_cli::main_with(args),
            Some("enclave-audit") => enclave_auditor::main_with(args),
            _ => 2,
        };
        std::process::exit(i32::from(code));
    }
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(audit::tests());
    trials.extend(invisibility::tests());
    trials.extend(jobs::tests());
    trials.extend(c_guest::tests());
    trials.extend(cli::tests());
    trials.extend(dependencies::tests());
    trials.extend(difference::tests());
    trials.extend(egress::tests());
    trials.extend(examples::tests());
    trials.extend(governance::tests());
    trials.extend(policy::tests());
    trials.extend(review::tests());
    trials.extend(sandbox::tests());
    trials.extend(sdc::tests());
    trials.extend(slt::tests());
    trials.extend(tamper::tests());
    trials.extend(wat::tests());
    trials.extend(witness::tests());
    libtest_mimic::run(&args, trials).exit();
}
