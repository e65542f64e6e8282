//! Unit tests of the difference check's sets, distances, search and encoding.
use super::*;

fn set(xs: impl IntoIterator<Item = u32>) -> SubjectSet {
    let mut s = SubjectSet::new();
    for x in xs {
        s.insert(x);
    }
    s
}

fn cell(tag: u8, xs: std::ops::Range<u32>) -> Cell {
    let s = set(xs);
    Cell {
        def: CellDef([tag; 32]),
        family: None,
        count: Count::exact(s.len()),
        set: s,
    }
}

#[test]
fn one_person_apart_is_too_close_and_identical_is_not() {
    let a = cell(1, 0..1000);
    let b = cell(2, 0..999);
    let d = distance(a.count, &a.set, b.count, &b.set);
    assert_eq!(d, 1);
    assert!(too_close(d, 10));
    let c = cell(3, 0..1000);
    assert_eq!(distance(a.count, &a.set, c.count, &c.set), 0);
    assert!(!too_close(0, 10));
    let far = cell(4, 0..980);
    assert!(!too_close(
        distance(a.count, &a.set, far.count, &far.set),
        10
    ));
}

#[test]
fn a_shared_index_never_hides_a_count_difference() {
    // Two subjects hashed to one index: the sets look equal, the counts do not.
    let s = set(0..100);
    assert_eq!(distance(Count::exact(101), &s, Count::exact(100), &s), 1);
    // A swap with the same count is the same size but a different set.
    let a = set(0..100);
    let b = set(1..101);
    assert_eq!(distance(Count::exact(100), &a, Count::exact(100), &b), 2);
}

#[test]
fn near_finds_every_cell_within_reach_and_skips_the_same_definition() {
    let mut cells = Cells::new();
    cells.push(cell(1, 0..1000));
    cells.push(cell(2, 0..5000));
    cells.push(Cell {
        def: CellDef([3; 32]),
        family: None,
        count: Count { lo: 10, hi: 2000 },
        set: set(0..1500),
    });
    let mut found: Vec<u8> = cells
        .near(CellDef([9; 32]), None, Count::exact(1009), 10)
        .map(|c| c.def.0[0])
        .collect();
    found.sort_unstable();
    assert_eq!(found, vec![1, 3]);
    assert_eq!(
        cells
            .near(CellDef([9; 32]), None, Count::exact(1010), 10)
            .count(),
        1
    );
    assert_eq!(
        cells
            .near(CellDef([1; 32]), None, Count::exact(1000), 10)
            .count(),
        1
    );
}

#[test]
fn groups_of_one_disjoint_population_are_not_compared_but_others_are() {
    let f = Some(CellDef([7; 32]));
    let mut cells = Cells::new();
    cells.push(Cell {
        family: f,
        ..cell(1, 0..1000)
    });
    cells.push(cell(2, 0..1001));
    let near: Vec<u8> = cells
        .near(CellDef([3; 32]), f, Count::exact(1005), 10)
        .map(|c| c.def.0[0])
        .collect();
    assert_eq!(near, vec![2], "the same family's other group is disjoint");
    assert_eq!(
        cells
            .near(CellDef([3; 32]), None, Count::exact(1005), 10)
            .count(),
        2
    );
    // The same definition in the same family, with another count, is compared.
    assert_eq!(
        cells
            .near(CellDef([1; 32]), f, Count::exact(1001), 10)
            .count(),
        2
    );
}

#[test]
fn conflicts_are_found_across_lists() {
    let mut released = Cells::new();
    released.push(cell(1, 0..1000));
    let mut new = Cells::new();
    new.push(cell(2, 5000..6000));
    new.push(cell(3, 1..1000));
    assert_eq!(
        released.conflict(&new, 10),
        Some(Conflict {
            cell: 1,
            distance: 1
        })
    );
    let mut same = Cells::new();
    same.push(cell(1, 0..1000));
    assert_eq!(released.conflict(&same, 10), None);
}

#[test]
fn the_encoding_round_trips_and_refuses_damage() {
    let mut cells = Cells::new();
    cells.push(cell(1, 0..1000));
    cells.push(cell(2, 70000..70010));
    let bytes = cells.encode();
    let back = Cells::decode(&bytes).unwrap();
    assert_eq!(back.cells(), cells.cells());
    for cut in [0, 10, 16, 24, 60, bytes.len() - 1] {
        assert!(Cells::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(Cells::decode(&long).is_err());
    // A huge declared count or set length is refused, not allocated.
    let mut huge = MAGIC.to_vec();
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(Cells::decode(&huge).is_err());
    let mut bad = bytes.clone();
    bad[16 + 8 + 32 + 8 + 8] = 2;
    assert!(Cells::decode(&bad).is_err(), "a family flag of 2");
    let mut bad = bytes.clone();
    bad[16 + 8 + 32 + 8 + 8 + 1] = 0xff;
    assert!(Cells::decode(&bad).is_err(), "a set length past the end");
    // Count bounds out of order.
    let mut swapped = bytes;
    swapped[16 + 8 + 32] = 0xff;
    assert!(Cells::decode(&swapped).is_err());
}

#[test]
fn sets_built_at_once_equal_sets_built_one_by_one() {
    let xs: Vec<u32> = (0..5000u32)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let one_by_one = set(xs.iter().copied());
    let mut twice = xs.clone();
    twice.extend(xs.iter().rev().copied());
    assert_eq!(SubjectSet::from_indices(twice), one_by_one);
    let (a, b) = (
        set(xs[..3000].iter().copied()),
        set(xs[2000..].iter().copied()),
    );
    assert_eq!(SubjectSet::union_all([&a, &b]), one_by_one);
    let mut c = a.clone();
    c.union_with(&b);
    assert_eq!(c, one_by_one);
    assert_eq!(one_by_one.indices().count(), 5000);
}

#[test]
fn the_index_is_keyed() {
    let a = SubjectKey::new([1; 32]);
    let b = SubjectKey::new([2; 32]);
    assert_eq!(
        a.index(b"110101199001011234"),
        a.index(b"110101199001011234")
    );
    assert_ne!(
        a.index(b"110101199001011234"),
        b.index(b"110101199001011234")
    );
}
