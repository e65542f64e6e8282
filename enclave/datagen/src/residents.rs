//! The `residents` table: fictional residents of Yancheng with valid 18-digit resident IDs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::RecordBatch;
use arrow_array::builder::{Date32Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::rng::{Random, Rng};
use super::yancheng::{DISTRICTS, GIVEN, PHONE_PREFIXES, SURNAMES, district_weights};
use super::{REFERENCE_DAY, civil_from_days, resident_id_check_digit};

const TABLE: u64 = 1;

/// Age bands (start age, width, weight) shaped like a Jiangsu population pyramid.
const AGE_BANDS: &[(u32, u32, u32)] = &[
    (0, 10, 9),
    (10, 10, 10),
    (20, 10, 11),
    (30, 10, 14),
    (40, 10, 15),
    (50, 10, 17),
    (60, 10, 13),
    (70, 10, 8),
    (80, 15, 3),
];

/// One generated person.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub resident_id: String,
    pub name: String,
    pub male: bool,
    pub birth_day: i32,
    pub age: i32,
    pub phone: String,
    pub district: usize,
    pub income: i64,
}

/// Sequential generator: row i depends on the seed and on rows before it (for unique IDs).
pub struct Residents {
    seed: u64,
    row: u64,
    /// Persons already given an ID per (district, birth day, sex).
    taken: HashMap<(u8, i32, bool), u16>,
    weights: Vec<u32>,
    band_weights: Vec<u32>,
}

impl Residents {
    pub fn new(seed: u64) -> Self {
        Residents {
            seed,
            row: 0,
            taken: HashMap::new(),
            weights: district_weights(),
            band_weights: AGE_BANDS.iter().map(|b| b.2).collect(),
        }
    }

    /// The next person.
    pub fn next_person(&mut self) -> Person {
        let mut r = Rng::for_row(self.seed, TABLE, self.row);
        self.row += 1;
        let district = r.weighted(&self.weights);
        let band = AGE_BANDS[r.weighted(&self.band_weights)];
        let age0 = band.0 + r.below(u64::from(band.1)) as u32;
        let male = r.below(100) < 51;
        let mut birth_day =
            REFERENCE_DAY - (age0 as i32 * 365 + age0 as i32 / 4) - r.below(365) as i32;
        // The 3-digit sequence is odd for men, even for women: 500 IDs per (district, day, sex).
        let seq = loop {
            let n = self
                .taken
                .entry((district as u8, birth_day, male))
                .or_insert(0);
            if *n < 500 {
                *n += 1;
                break (*n - 1) * 2 + u16::from(male);
            }
            birth_day -= 1;
        };
        let (y, m, d) = civil_from_days(birth_day);
        let (ry, rm, rd) = civil_from_days(REFERENCE_DAY);
        let age = ry - y - i32::from((rm, rd) < (m, d));
        let body = format!("{}{y:04}{m:02}{d:02}{seq:03}", DISTRICTS[district].code);
        let resident_id = format!("{body}{}", resident_id_check_digit(&body).unwrap_or('0'));
        let name = {
            let mut s = String::from(*r.pick(SURNAMES));
            s.push_str(r.pick::<&str>(GIVEN));
            if r.below(100) < 70 {
                s.push_str(r.pick::<&str>(GIVEN));
            }
            s
        };
        let phone = format!("{}{:08}", r.pick(PHONE_PREFIXES), r.below(100_000_000));
        let income = income(&mut r, age, district);
        Person {
            resident_id,
            name,
            male,
            birth_day,
            age,
            phone,
            district,
            income,
        }
    }
}

/// Annual income in yuan: zero for children, a hump over working life, pensions after 60,
/// log-normal spread, scaled by district.
fn income(r: &mut Rng, age: i32, district: usize) -> i64 {
    if age < 18 {
        return 0;
    }
    let a = f64::from(age);
    let base = if age < 60 {
        28_000.0 + 2_600.0 * (a - 18.0) - 38.0 * (a - 18.0) * (a - 18.0)
    } else {
        30_000.0
    };
    let spread = (0.45 * r.normal()).exp();
    let v = base.max(8_000.0) * spread * f64::from(DISTRICTS[district].income_pct) / 100.0;
    (v / 100.0).round() as i64 * 100
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("resident_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new("birth_date", DataType::Date32, false),
        Field::new("age", DataType::Int32, false),
        Field::new("age_band", DataType::Utf8, false),
        Field::new("phone", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("income", DataType::Int64, false),
    ]))
}

/// The age band label of an age, e.g. `30-39`, `90+`.
pub fn age_band(age: i32) -> String {
    if age >= 90 {
        "90+".to_owned()
    } else {
        let lo = age.max(0) / 10 * 10;
        format!("{lo}-{}", lo + 9)
    }
}

impl super::Table for Residents {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn batch(&mut self, rows: usize) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut id = StringBuilder::with_capacity(rows, rows * 18);
        let mut name = StringBuilder::with_capacity(rows, rows * 9);
        let mut sex = StringBuilder::with_capacity(rows, rows * 3);
        let mut birth = Date32Builder::with_capacity(rows);
        let mut age = Int32Builder::with_capacity(rows);
        let mut band = StringBuilder::with_capacity(rows, rows * 5);
        let mut phone = StringBuilder::with_capacity(rows, rows * 11);
        let mut district = StringBuilder::with_capacity(rows, rows * 9);
        let mut income = Int64Builder::with_capacity(rows);
        for _ in 0..rows {
            let p = self.next_person();
            id.append_value(&p.resident_id);
            name.append_value(&p.name);
            sex.append_value(if p.male { "男" } else { "女" });
            birth.append_value(p.birth_day);
            age.append_value(p.age);
            band.append_value(age_band(p.age));
            phone.append_value(&p.phone);
            district.append_value(DISTRICTS[p.district].name);
            income.append_value(p.income);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(sex.finish()),
            Arc::new(birth.finish()),
            Arc::new(age.finish()),
            Arc::new(band.finish()),
            Arc::new(phone.finish()),
            Arc::new(district.finish()),
            Arc::new(income.finish()),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}
