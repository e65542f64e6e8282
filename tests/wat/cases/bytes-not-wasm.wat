;; Not a Wasm binary at all.
;;! expect: invalid_module
;;! bytes: not wasm
