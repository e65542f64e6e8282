;; A component (version 0x0d, layer 1), not a core module.
;;! expect: invalid_module
;;! message: component
;;! hex: 0061736d0d000100
