//! The `enclave` binary.

fn main() -> std::process::ExitCode {
    enclave_cli::main()
}
