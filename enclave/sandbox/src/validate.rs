//! Static checks on a compiled module before it may be instantiated.
//!
//! Owns the rule "no ambient authority": a module may import only functions of the `enclave_v1`
//! ABI with their exact signatures, and must export `memory` and `enclave_run`. It must never let
//! a module through because a check could not be made.

use wasmtime::{ExternType, FuncType, Module, ValType};

use enclave_abi::{ENTRY, IMPORTS, MEMORY, MODULE};
use enclave_core::{ErrorKind, JobError};

fn wasm_type(t: enclave_abi::ValType) -> ValType {
    match t {
        enclave_abi::ValType::I32 => ValType::I32,
        enclave_abi::ValType::I64 => ValType::I64,
    }
}

fn sig(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn same(a: &[ValType], b: impl ExactSizeIterator<Item = ValType>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, &y))
}

fn func_matches(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    same(params, ty.params()) && same(results, ty.results())
}

/// Checks imports and exports; the first problem found is returned.
pub fn check(module: &Module) -> Result<(), JobError> {
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        let what = format!("`{}.{}`", m.escape_debug(), n.escape_debug());
        if m != MODULE {
            return Err(JobError::new(
                ErrorKind::ForbiddenImport,
                format!(
                    "module imports {what}, which is outside the {MODULE} ABI; jobs have no ambient \
                     authority (no WASI, no other host functions) and may import only {MODULE} functions"
                ),
            ));
        }
        let ExternType::Func(ty) = import.ty() else {
            return Err(JobError::new(
                ErrorKind::ForbiddenImport,
                format!(
                    "module imports {what} as a non-function; the {MODULE} ABI provides only functions"
                ),
            ));
        };
        let Some(abi) = IMPORTS.iter().find(|i| i.name == n) else {
            return Err(JobError::new(
                ErrorKind::ForbiddenImport,
                format!("module imports {what}, which is not a function of the {MODULE} ABI"),
            ));
        };
        let params: Vec<ValType> = abi.params.iter().map(|p| wasm_type(p.ty)).collect();
        let results: Vec<ValType> = abi.result.map(wasm_type).into_iter().collect();
        let (params, results) = (params.as_slice(), results.as_slice());
        if !func_matches(&ty, params, results) {
            return Err(JobError::new(
                ErrorKind::ForbiddenImport,
                format!(
                    "module imports {what} with signature {ty}, but the ABI defines {}",
                    sig(params, results)
                ),
            ));
        }
    }

    match module.get_export(MEMORY) {
        Some(ExternType::Memory(m)) if !m.is_shared() && !m.is_64() => {}
        Some(_) => {
            return Err(JobError::new(
                ErrorKind::MissingExport,
                "export `memory` must be a 32-bit, unshared linear memory",
            ));
        }
        None => {
            return Err(JobError::new(
                ErrorKind::MissingExport,
                "module does not export its linear memory as `memory`",
            ));
        }
    }
    match module.get_export(ENTRY) {
        Some(ExternType::Func(f)) if func_matches(&f, &[], &[ValType::I32]) => Ok(()),
        Some(_) => Err(JobError::new(
            ErrorKind::MissingExport,
            "export `enclave_run` must be a function () -> i32",
        )),
        None => Err(JobError::new(
            ErrorKind::MissingExport,
            "module does not export `enclave_run`, the job's entry point (see docs/abi.md)",
        )),
    }
}
