//! The dominance rules against ACRO's statement of them, and the two accumulators against each
//! other.

use super::*;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

fn cell(n: usize, k: f64, p: f64) -> Cell {
    Cell {
        rules: (n, k, p),
        kept: n.max(2),
        sum: 0.0,
        negatives: 0,
        top: Vec::new(),
    }
}

fn code_with(rules: (usize, f64, f64), values: &[f64]) -> i64 {
    let mut c = cell(rules.0, rules.1, rules.2);
    for v in values {
        c.add(*v);
    }
    c.code()
}

fn code(values: &[f64]) -> i64 {
    code_with((2, 0.9, 0.1), values)
}

#[test]
fn the_rules_as_acro_states_them() {
    // Ten equal contributions: safe.
    assert_eq!(code(&[10.0; 10]), SAFE);
    // Two contributors make 95 % of the total: N-K fails.
    let mut v = vec![1.0; 10];
    v.extend([100.0, 90.0]);
    assert_eq!(code(&v), FAILS_NK);
    // Exactly K fails too (ACRO's check_nk_dominance compares with >=).
    assert_eq!(code(&[45.0, 45.0, 5.0, 5.0]), FAILS_NK);
    // With N = 1 the largest alone is weighed; what is left after the two largest is under
    // 10 % of the largest: p % fails while N-K holds.
    assert_eq!(code_with((1, 0.9, 0.1), &[100.0, 80.0, 10.0]), SAFE);
    assert_eq!(code_with((1, 0.9, 0.1), &[100.0, 80.0, 5.0]), FAILS_P);
    assert_eq!(code_with((1, 0.9, 0.0), &[100.0, 80.0, 5.0]), SAFE);
    // Negative contributions: undefined if their magnitudes hold, dominated if not (negating
    // a column hides nothing).
    assert_eq!(code(&[10.0, -1.0, 10.0, 10.0, 10.0]), UNDEFINED);
    let mut negated = vec![-1.0; 10];
    negated.extend([-100.0, -90.0]);
    assert_eq!(code(&negated), FAILS_NK);
    // A total that is not finite fails.
    assert_eq!(code(&[f64::INFINITY, 1.0, 1.0, 1.0]), FAILS_NK);
    assert_eq!(code(&[f64::MAX, f64::MAX, 1.0, 1.0]), FAILS_NK);
    // All zeros: the largest is zero and nothing remains, which fails p % (as in ACRO).
    assert_eq!(code(&[0.0; 12]), FAILS_P);
    assert_eq!(code(&[]), SAFE);
    // NaN contributions are not counted.
    assert_eq!(code(&[10.0, f64::NAN, 10.0, 10.0, 10.0]), SAFE);
}

#[test]
fn the_vectorized_cells_agree_with_one_cell_at_a_time() {
    let mut m = 7u64;
    let mut next = || {
        m = m
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        m >> 33
    };
    for n in [1usize, 2, 4] {
        let rules = (n, 0.9, 0.1);
        let mut cells = Cells {
            rules,
            kept: n.max(2),
            sums: Vec::new(),
            negatives: Vec::new(),
            tops: Vec::new(),
            filled: Vec::new(),
            floor: Vec::new(),
        };
        let mut one: Vec<Cell> = (0..50).map(|_| cell(n, 0.9, 0.1)).collect();
        let mut partial = Cells {
            rules,
            kept: n.max(2),
            sums: Vec::new(),
            negatives: Vec::new(),
            tops: Vec::new(),
            filled: Vec::new(),
            floor: Vec::new(),
        };
        for batch in 0..6 {
            let len = 500;
            let groups: Vec<usize> = (0..len).map(|_| (next() % 50) as usize).collect();
            // Some groups get a dominant contributor, some a negative one, some only zeros.
            let values: Vec<Option<f64>> = groups
                .iter()
                .map(|g| match (g % 5, next() % 40) {
                    (0, 0) => Some(1e7),
                    (1, 0) => Some(-3.0),
                    (2, _) => Some(0.0),
                    (_, 1) => None,
                    _ => Some((next() % 1000) as f64),
                })
                .collect();
            let array: ArrayRef = Arc::new(Float64Array::from(values.clone()));
            let target = if batch % 2 == 0 {
                &mut cells
            } else {
                &mut partial
            };
            target
                .update_batch(&[Arc::clone(&array)], &groups, None, 50)
                .unwrap();
            for (g, v) in groups.iter().zip(&values) {
                if let Some(v) = v {
                    one[*g].add(*v);
                }
            }
        }
        // Rows passed on as states one by one merge like rows.
        let extra: ArrayRef = Arc::new(Float64Array::from(vec![Some(5.0), None, Some(-1.0)]));
        let converted = cells.convert_to_state(&[Arc::clone(&extra)], None).unwrap();
        cells.merge_batch(&converted, &[3, 3, 4], 50).unwrap();
        one[3].add(5.0);
        one[4].add(-1.0);
        // Half the rows went to a partial accumulator, merged as its state.
        let state = partial.state(EmitTo::All).unwrap();
        let all: Vec<usize> = (0..50).collect();
        cells.merge_batch(&state, &all, 50).unwrap();
        let codes = cells.evaluate(EmitTo::First(20)).unwrap();
        let rest = cells.evaluate(EmitTo::All).unwrap();
        let codes: Vec<i64> = codes
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .chain(rest.as_primitive::<Int64Type>().values().iter())
            .copied()
            .collect();
        let expected: Vec<i64> = one.iter().map(Cell::code).collect();
        assert_eq!(codes, expected, "n = {n}");
        for c in [SAFE, FAILS_NK, UNDEFINED] {
            assert!(codes.contains(&c), "n = {n}: {codes:?} lacks {c}");
        }
    }
}

#[test]
fn partial_states_merge_to_the_same_code() {
    for n in [1usize, 2, 3, 10] {
        let (mut whole, mut a, mut b) = (cell(n, 0.9, 0.1), cell(n, 0.9, 0.1), cell(n, 0.9, 0.1));
        let xs: Vec<f64> = (0..40).map(|i| f64::from(i * 7 % 13)).collect();
        for (i, x) in xs.iter().enumerate() {
            whole.add(*x);
            if i % 2 == 0 { a.add(*x) } else { b.add(*x) }
        }
        let state: Vec<ArrayRef> = b
            .state()
            .unwrap()
            .into_iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        a.merge_batch(&state).unwrap();
        assert_eq!(a.top, whole.top, "n = {n}");
        assert!((a.sum - whole.sum).abs() < 1e-9);
        assert_eq!(a.code(), whole.code());
        assert!(
            a.merge_batch(&state[..1]).is_err(),
            "a state of the wrong width"
        );
    }
}
