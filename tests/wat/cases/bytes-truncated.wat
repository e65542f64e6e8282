;; A valid header followed by garbage.
;;! expect: invalid_module
;;! hex: 0061736d01000000ffff
