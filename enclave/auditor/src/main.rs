//! The `enclave-audit` binary.

fn main() -> std::process::ExitCode {
    enclave_auditor::main()
}
