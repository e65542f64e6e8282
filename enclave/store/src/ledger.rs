//! The domain's privacy ledger: what each application has spent on each dataset.
//!
//! Owns `budget/ledger.jsonl`: one line per charge (application, dataset, ε, δ, time), appended
//! and synced before the noised query runs, under an exclusive lock on the file, so concurrent
//! jobs of one domain compose correctly. The spent total of (application, dataset) is the sum of
//! its lines (basic sequential composition). A charge that would exceed the budget writes
//! nothing. It must never lose a charge that was acknowledged, nor acknowledge one it could
//! not write.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use enclave_dp::{Balance, Budget, Cost, Ledger, LedgerError, settle};
use serde::{Deserialize, Serialize};

/// Largest ledger read (a line is ≈ 100 bytes: 10M charges).
const MAX_LEDGER: u64 = 1 << 30;

#[derive(Serialize, Deserialize)]
struct Line {
    application: String,
    dataset: String,
    epsilon: f64,
    delta: f64,
    time_ms: u64,
}

/// The ledger of one application, in the domain directory.
pub struct DurableLedger {
    path: PathBuf,
    application: String,
    budget: Budget,
}

impl DurableLedger {
    /// The ledger file `path` (created on first charge), as `application` with `budget` per
    /// dataset.
    pub fn new(path: &Path, application: &str, budget: Budget) -> DurableLedger {
        DurableLedger {
            path: path.to_owned(),
            application: application.to_owned(),
            budget,
        }
    }

    /// What `application` has spent per dataset.
    pub fn spent(&self) -> Result<BTreeMap<String, Cost>, LedgerError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(storage(&self.path, e)),
        };
        file.lock_shared().map_err(|e| storage(&self.path, e))?;
        self.read(&file)
    }

    fn read(&self, file: &File) -> Result<BTreeMap<String, Cost>, LedgerError> {
        let len = file.metadata().map_err(|e| storage(&self.path, e))?.len();
        if len > MAX_LEDGER {
            return Err(LedgerError::Storage(format!(
                "{} is larger than {MAX_LEDGER} bytes",
                self.path.display()
            )));
        }
        let mut spent: BTreeMap<String, Cost> = BTreeMap::new();
        for (n, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| storage(&self.path, e))?;
            if line.is_empty() {
                continue;
            }
            let l: Line = serde_json::from_str(&line).map_err(|_| {
                LedgerError::Storage(format!(
                    "{}:{}: not a ledger line",
                    self.path.display(),
                    n + 1
                ))
            })?;
            if l.application == self.application {
                let c = spent.entry(l.dataset).or_default();
                *c = c.then(Cost {
                    epsilon: l.epsilon,
                    delta: l.delta,
                });
            }
        }
        Ok(spent)
    }
}

fn storage(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Storage(format!("{}: {e}", path.display()))
}

impl Ledger for DurableLedger {
    fn charge(
        &self,
        datasets: &[String],
        cost: Cost,
    ) -> Result<Vec<(String, Balance)>, LedgerError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| storage(&self.path, e))?;
        file.lock().map_err(|e| storage(&self.path, e))?;
        let spent = self.read(&file)?;
        let balances = settle(&spent, &self.budget, datasets, cost)?;
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut text = String::new();
        for d in datasets {
            let line = Line {
                application: self.application.clone(),
                dataset: d.clone(),
                epsilon: cost.epsilon,
                delta: cost.delta,
                time_ms,
            };
            text.push_str(
                &serde_json::to_string(&line).map_err(|e| LedgerError::Storage(e.to_string()))?,
            );
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| storage(&self.path, e))?;
        Ok(balances)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_survives_reopening_and_is_per_application() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget/ledger.jsonl");
        let budget = Cost::new(1.0, 0.0).unwrap();
        let q = Cost::new(0.6, 0.0).unwrap();
        let a = DurableLedger::new(&path, "app-a", budget);
        a.charge(&["residents".into()], q).unwrap();
        // Another process (a new ledger value) sees the spending and refuses the next one.
        let a2 = DurableLedger::new(&path, "app-a", budget);
        assert!(matches!(
            a2.charge(&["residents".into()], q),
            Err(LedgerError::OverBudget { .. })
        ));
        assert!((a2.spent().unwrap()["residents"].epsilon - 0.6).abs() < 1e-12);
        // Another application has its own budget.
        DurableLedger::new(&path, "app-b", budget)
            .charge(&["residents".into()], q)
            .unwrap();
        // A refused charge wrote nothing.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
