;; Zero bytes.
;;! expect: invalid_module
;;! hex:
