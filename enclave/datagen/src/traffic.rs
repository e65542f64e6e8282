//! The `traffic_records` table: camera records of vehicles on Yancheng roads.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::RecordBatch;
use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::REFERENCE_DAY;
use super::rng::{Random, Rng};
use super::yancheng::{DISTRICTS, ROADS, VEHICLE_TYPES, district_weights};

const TABLE: u64 = 3;
const PLATE_CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";

pub struct Traffic {
    seed: u64,
    row: u64,
    weights: Vec<u32>,
    vehicle_weights: Vec<u32>,
}

impl Traffic {
    pub fn new(seed: u64) -> Self {
        Traffic {
            seed,
            row: 0,
            weights: district_weights(),
            vehicle_weights: VEHICLE_TYPES.iter().map(|v| v.1).collect(),
        }
    }
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Int64, false),
        Field::new("plate", DataType::Utf8, false),
        Field::new("vehicle_type", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("road", DataType::Utf8, false),
        Field::new("camera_id", DataType::Utf8, false),
        Field::new(
            "observed_at",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("speed_kmh", DataType::Int32, false),
        Field::new("speed_limit_kmh", DataType::Int32, false),
        Field::new("violation", DataType::Utf8, true),
    ]))
}

impl super::Table for Traffic {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn batch(&mut self, rows: usize) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut id = Int64Builder::with_capacity(rows);
        let mut plate = StringBuilder::with_capacity(rows, rows * 10);
        let mut vtype = StringBuilder::with_capacity(rows, rows * 15);
        let mut dist = StringBuilder::with_capacity(rows, rows * 9);
        let mut road = StringBuilder::with_capacity(rows, rows * 12);
        let mut cam = StringBuilder::with_capacity(rows, rows * 12);
        let mut at = TimestampMillisecondBuilder::with_capacity(rows);
        let mut speed = Int32Builder::with_capacity(rows);
        let mut limit = Int32Builder::with_capacity(rows);
        let mut violation = StringBuilder::with_capacity(rows, rows);
        let day0 = i64::from(REFERENCE_DAY - 365) * 86_400_000;
        for _ in 0..rows {
            let mut r = Rng::for_row(self.seed, TABLE, self.row);
            self.row += 1;
            let d = r.weighted(&self.weights);
            let mut p = String::from("苏J");
            for _ in 0..5 {
                p.push(char::from(*r.pick(PLATE_CHARS)));
            }
            let v = VEHICLE_TYPES[r.weighted(&self.vehicle_weights)].0;
            let road_i = r.below(ROADS.len() as u64) as usize;
            let lim = [40, 50, 60, 80][road_i % 4];
            // Rush hours are busier: draw the hour from a two-peaked shape.
            let hour = if r.below(100) < 40 {
                [7, 8, 17, 18][r.below(4) as usize]
            } else {
                r.below(24) as i64
            };
            let t = day0
                + r.below(365) as i64 * 86_400_000
                + hour * 3_600_000
                + r.below(3_600_000) as i64;
            let s = (f64::from(lim) * (0.85 + 0.12 * r.normal()))
                .round()
                .max(5.0) as i32;
            id.append_value(self.row as i64);
            plate.append_value(&p);
            vtype.append_value(v);
            dist.append_value(DISTRICTS[d].name);
            road.append_value(ROADS[road_i]);
            cam.append_value(format!("YC-{:03}-{:02}", d * 100 + road_i, r.below(20)));
            at.append_value(t);
            speed.append_value(s);
            limit.append_value(lim);
            if s > lim * 12 / 10 {
                violation.append_value("超速");
            } else {
                violation.append_null();
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(plate.finish()),
            Arc::new(vtype.finish()),
            Arc::new(dist.finish()),
            Arc::new(road.finish()),
            Arc::new(cam.finish()),
            Arc::new(at.finish()),
            Arc::new(speed.finish()),
            Arc::new(limit.finish()),
            Arc::new(violation.finish()),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}
