;; No entry point.
;;! expect: missing_export
(module (memory (export "memory") 1))
