//! Known-answer tests from the transparency-dev/merkle `testdata` (RFC 6962/9162 vectors),
//! restated here, plus mutations of each happy path in the style of those files.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

fn b64(s: &str) -> Hash {
    let v = STANDARD.decode(s).unwrap();
    v.try_into().unwrap()
}

fn hx(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// The eight leaves of the reference tree.
fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|s| hx(s))
    .collect()
}

fn tree(n: usize) -> Tree {
    let mut t = Tree::new();
    for l in &leaves()[..n] {
        t.push(leaf_hash(l));
    }
    t
}

/// (leafIdx, treeSize, root, leafHash, proof) from `testdata/inclusion/{0..4}/happy-path.json`.
const INCLUSION: &[(u64, u64, &str, &str, &[&str])] = &[
    (
        0,
        1,
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        &[],
    ),
    (
        0,
        8,
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        5,
        8,
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "QnGia+DYqE8L1UyMMC58s6O10fpngKQLzOKHNHfatlg=",
        &[
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (
        2,
        3,
        "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=",
        "ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c=",
        &["+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="],
    ),
    (
        1,
        5,
        "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=",
        "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
        &[
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
];

/// (size1, size2, root1, root2, proof) from `testdata/consistency/{0..4}/happy-path.json`.
const CONSISTENCY: &[(u64, u64, &str, &str, &[&str])] = &[
    (
        1,
        1,
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        &[],
    ),
    (
        1,
        8,
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    ),
    (
        6,
        8,
        "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
    (
        2,
        5,
        "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=",
        "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=",
        &[
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    ),
    (
        6,
        7,
        "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
        "3bib5AOAnjJXUNPSY814kpwpQreUKjS3fhIslZSnTIw=",
        &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    ),
];

fn proof(p: &[&str]) -> Vec<Hash> {
    p.iter().map(|s| b64(s)).collect()
}

#[test]
fn reference_root_and_empty_tree() {
    let t = tree(8);
    assert_eq!(
        hex::encode(t.root(8).unwrap()),
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    );
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // The compact range agrees with the full tree at every size.
    let mut c = CompactRange::new();
    assert_eq!(c.root(), empty_root());
    for (i, l) in leaves().iter().enumerate() {
        c.push(leaf_hash(l));
        assert_eq!(c.root(), t.root(i as u64 + 1).unwrap(), "size {}", i + 1);
    }
}

#[test]
fn inclusion_vectors_verify_and_are_generated() {
    let t = tree(8);
    for &(index, size, root, leaf, p) in INCLUSION {
        let (root, leaf, p) = (b64(root), b64(leaf), proof(p));
        verify_inclusion(index, size, &leaf, &p, &root).unwrap();
        assert_eq!(t.root(size).unwrap(), root);
        assert_eq!(t.leaf(index).unwrap(), leaf);
        assert_eq!(t.inclusion_proof(index, size).unwrap(), p, "{index}/{size}");
    }
}

#[test]
fn inclusion_mutations_fail() {
    for &(index, size, root, leaf, p) in INCLUSION {
        let (root, leaf, p) = (b64(root), b64(leaf), proof(p));
        let bad = |i: u64, s: u64, l: &Hash, pr: &[Hash], r: &Hash| {
            verify_inclusion(i, s, l, pr, r).is_err()
        };
        // wrong-leaf, random-root, empty-root, leafIdx±1, treeSize*2, treeSize/2.
        let mut other = leaf;
        other[0] ^= 1;
        assert!(bad(index, size, &other, &p, &root));
        assert!(bad(index, size, &leaf, &p, &[7u8; 32]));
        assert!(bad(index, size, &leaf, &p, &empty_root()));
        assert!(bad(index + 1, size, &leaf, &p, &root));
        if index > 0 {
            assert!(bad(index - 1, size, &leaf, &p, &root));
        }
        assert!(bad(index ^ 2, size, &leaf, &p, &root) || index ^ 2 == index);
        assert!(bad(index, size * 2, &leaf, &p, &root));
        assert!(bad(index, size / 2, &leaf, &p, &root));
        // modified-proof[i]-bit-3, removed and inserted components, garbage around it.
        for i in 0..p.len() {
            let mut q = p.clone();
            q[i][0] ^= 8;
            assert!(bad(index, size, &leaf, &q, &root));
            let mut q = p.clone();
            q.remove(i);
            assert!(bad(index, size, &leaf, &q, &root));
        }
        let mut q = p.clone();
        q.push(leaf);
        assert!(bad(index, size, &leaf, &q, &root), "trailing garbage");
        let mut q = p.clone();
        q.insert(0, leaf);
        assert!(bad(index, size, &leaf, &q, &root), "preceding garbage");
        let mut q = p.clone();
        q.push(root);
        assert!(bad(index, size, &leaf, &q, &root), "trailing root");
    }
}

#[test]
fn consistency_vectors_verify_and_are_generated() {
    let t = tree(8);
    for &(s1, s2, r1, r2, p) in CONSISTENCY {
        let (r1, r2, p) = (b64(r1), b64(r2), proof(p));
        verify_consistency(s1, s2, &r1, &r2, &p).unwrap();
        assert_eq!(t.root(s1).unwrap(), r1);
        assert_eq!(t.root(s2).unwrap(), r2);
        if s1 < s2 {
            assert_eq!(t.consistency_proof(s1, s2).unwrap(), p, "{s1}->{s2}");
        }
    }
}

#[test]
fn consistency_mutations_fail() {
    for &(s1, s2, r1, r2, p) in CONSISTENCY {
        let (r1, r2, p) = (b64(r1), b64(r2), proof(p));
        let bad = |a: u64, b: u64, x: &Hash, y: &Hash, pr: &[Hash]| {
            verify_consistency(a, b, x, y, pr).is_err()
        };
        assert!(bad(s1, s2, &r2, &r1, &p) || r1 == r2, "swapped roots");
        let mut w = r1;
        w[0] ^= 1;
        assert!(bad(s1, s2, &w, &r2, &p), "wrong root1");
        let mut w = r2;
        w[0] ^= 1;
        assert!(bad(s1, s2, &r1, &w, &p), "wrong root2");
        assert!(bad(s1 + 1, s2, &r1, &r2, &p), "size1+1");
        assert!(bad(s1, s2 * 2, &r1, &r2, &p), "size2*2");
        if s1 > 1 {
            assert!(bad(s1 - 1, s2, &r1, &r2, &p), "size1-1");
        }
        assert!(bad(0, s2, &r1, &r2, &p), "from size 0");
        for i in 0..p.len() {
            let mut q = p.clone();
            q[i][0] ^= 16;
            assert!(bad(s1, s2, &r1, &r2, &q), "modified proof[{i}]");
        }
        if !p.is_empty() {
            assert!(bad(s1, s2, &r1, &r2, &[]), "empty proof");
            assert!(bad(s1, s2, &r1, &r2, &p[..p.len() - 1]), "truncated");
        }
        let mut q = p.clone();
        q.push(r2);
        assert!(bad(s1, s2, &r1, &r2, &q), "trailing root2");
        let mut q = p.clone();
        q.insert(0, r1);
        assert!(bad(s1, s2, &r1, &r2, &q), "preceding root1");
    }
}

#[test]
fn generated_proofs_verify_for_every_pair_up_to_64() {
    let mut t = Tree::new();
    for i in 0..64u32 {
        t.push(leaf_hash(&i.to_be_bytes()));
    }
    for size in 1..=64 {
        let root = t.root(size).unwrap();
        for index in 0..size {
            let p = t.inclusion_proof(index, size).unwrap();
            verify_inclusion(index, size, &t.leaf(index).unwrap(), &p, &root).unwrap();
        }
        for s1 in 1..=size {
            let p = t.consistency_proof(s1, size).unwrap();
            verify_consistency(s1, size, &t.root(s1).unwrap(), &root, &p).unwrap();
        }
    }
    assert!(t.inclusion_proof(64, 64).is_err());
    assert!(t.consistency_proof(0, 3).is_err());
    assert!(t.consistency_proof(5, 3).is_err());
    assert!(t.root(65).is_err());
}

#[test]
fn consistency_proofs_give_the_old_root_without_a_trusted_one() {
    let mut tree = Tree::new();
    for i in 0..64u8 {
        tree.push(leaf_hash(&[i]));
    }
    for size2 in 1..=64u64 {
        let root2 = tree.root(size2).unwrap();
        for size1 in 1..=size2 {
            let proof = tree.consistency_proof(size1, size2).unwrap();
            let got = super::consistency_old_root(size1, size2, &root2, &proof).unwrap();
            if size1 == size2 || !size1.is_power_of_two() {
                assert_eq!(got, Some(tree.root(size1).unwrap()), "{size1} -> {size2}");
            } else {
                assert_eq!(got, None, "{size1} -> {size2}");
            }
            // A proof against another root is refused.
            if size1 < size2 && !size1.is_power_of_two() {
                let mut wrong = root2;
                wrong[0] ^= 1;
                assert!(super::consistency_old_root(size1, size2, &wrong, &proof).is_err());
            }
        }
    }
}
