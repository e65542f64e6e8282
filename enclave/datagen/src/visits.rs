//! The `hospital_visits` table: outpatient visits of the residents generated with the same seed.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::RecordBatch;
use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::REFERENCE_DAY;
use super::residents::Residents;
use super::rng::{Random, Rng};
use super::yancheng::{DEPARTMENTS, DIAGNOSES, DISTRICTS, HOSPITALS};

const TABLE: u64 = 2;

pub struct Visits {
    seed: u64,
    row: u64,
    /// (resident ID, district index, age) of the population the visits draw from.
    population: Vec<(String, usize, i32)>,
    diagnosis_weights: Vec<u32>,
}

impl Visits {
    /// Visits by the first `population` residents of seed `seed` (same IDs as `residents`).
    pub fn new(seed: u64, population: u64) -> Self {
        let mut generator = Residents::new(seed);
        let population = (0..population.max(1))
            .map(|_| {
                let p = generator.next_person();
                (p.resident_id, p.district, p.age)
            })
            .collect();
        Visits {
            seed,
            row: 0,
            population,
            diagnosis_weights: DIAGNOSES.iter().map(|d| d.1).collect(),
        }
    }
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("visit_id", DataType::Int64, false),
        Field::new("resident_id", DataType::Utf8, false),
        Field::new("hospital", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("department", DataType::Utf8, false),
        Field::new("visit_date", DataType::Date32, false),
        Field::new("diagnosis", DataType::Utf8, false),
        Field::new("cost", DataType::Float64, false),
        Field::new("insured", DataType::Boolean, false),
    ]))
}

impl super::Table for Visits {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn batch(&mut self, rows: usize) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut id = Int64Builder::with_capacity(rows);
        let mut rid = StringBuilder::with_capacity(rows, rows * 18);
        let mut hosp = StringBuilder::with_capacity(rows, rows * 24);
        let mut dist = StringBuilder::with_capacity(rows, rows * 9);
        let mut dept = StringBuilder::with_capacity(rows, rows * 9);
        let mut date = Date32Builder::with_capacity(rows);
        let mut diag = StringBuilder::with_capacity(rows, rows * 5);
        let mut cost = Float64Builder::with_capacity(rows);
        let mut insured = BooleanBuilder::with_capacity(rows);
        for _ in 0..rows {
            let mut r = Rng::for_row(self.seed, TABLE, self.row);
            self.row += 1;
            // Older residents visit more often: draw twice, keep the older with some probability.
            let a = r.pick(&self.population);
            let b = r.pick(&self.population);
            let (resident, home, _) = if a.2 >= b.2 || r.below(3) == 0 { a } else { b };
            // Mostly a hospital in the resident's own district, sometimes the city hospitals.
            let local: Vec<&(&str, usize)> = HOSPITALS.iter().filter(|h| h.1 == *home).collect();
            let h = if local.is_empty() || r.below(4) == 0 {
                r.pick(HOSPITALS)
            } else {
                *r.pick(&local)
            };
            id.append_value(self.row as i64);
            rid.append_value(resident);
            hosp.append_value(h.0);
            dist.append_value(DISTRICTS[h.1].name);
            dept.append_value(r.pick(DEPARTMENTS));
            date.append_value(REFERENCE_DAY - 365 + r.below(365) as i32);
            diag.append_value(DIAGNOSES[r.weighted(&self.diagnosis_weights)].0);
            let c = 80.0 * (0.9 * r.normal()).exp() + 15.0;
            cost.append_value((c * 100.0).round() / 100.0);
            insured.append_value(r.below(100) < 93);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(rid.finish()),
            Arc::new(hosp.finish()),
            Arc::new(dist.finish()),
            Arc::new(dept.finish()),
            Arc::new(date.finish()),
            Arc::new(diag.finish()),
            Arc::new(cost.finish()),
            Arc::new(insured.finish()),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}
