//! Which shard of a grid this process answers: given on the command line
//! (`--shard I/N`), or read from a cluster scheduler's environment
//! (`--shard auto`): a Slurm job array or a Kubernetes indexed job, so one
//! job script runs every shard.

use crate::{parse_shard, EvalError};

/// `--shard`: a fixed shard, or the scheduler's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(usize, usize),
    /// From `SLURM_ARRAY_TASK_ID` (less `SLURM_ARRAY_TASK_MIN`, so arrays
    /// may start at 1) over `SLURM_ARRAY_TASK_COUNT`, or from Kubernetes'
    /// `JOB_COMPLETION_INDEX` over `--shard-count`.
    Auto,
}

impl std::str::FromStr for ShardSpec {
    type Err = EvalError;

    fn from_str(text: &str) -> Result<ShardSpec, EvalError> {
        if text.trim() == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let (i, n) = parse_shard(text)
            .map_err(|_| EvalError::Selection(format!("shard `{text}`: write I/N (0 <= I < N, e.g. 0/4) or auto")))?;
        Ok(ShardSpec::Fixed(i, n))
    }
}

impl ShardSpec {
    /// The shard `(index, count)`, reading the scheduler's variables through
    /// `var` for `Auto`; `count` is `--shard-count`, needed where the
    /// scheduler does not say how many shards there are (Kubernetes) and
    /// checked against it where it does (Slurm).
    pub fn resolve(
        self,
        var: &dyn Fn(&str) -> Option<String>,
        count: Option<usize>,
    ) -> Result<(usize, usize), EvalError> {
        let shard = match self {
            ShardSpec::Fixed(i, n) => {
                if count.is_some_and(|c| c != n) {
                    return Err(EvalError::Selection(format!(
                        "--shard {i}/{n} and --shard-count {} disagree",
                        count.unwrap_or(n)
                    )));
                }
                return Ok((i, n));
            }
            ShardSpec::Auto => from_environment(var, count)?,
        };
        let (i, n) = shard;
        if n == 0 || i >= n {
            return Err(EvalError::Selection(format!(
                "the scheduler says shard {i} of {n}: the index must be below the count"
            )));
        }
        Ok(shard)
    }
}

fn number(var: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>, EvalError> {
    match var(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| EvalError::Selection(format!("{name} is `{text}`, not a whole number"))),
    }
}

fn from_environment(var: &dyn Fn(&str) -> Option<String>, count: Option<usize>) -> Result<(usize, usize), EvalError> {
    if let Some(id) = number(var, "SLURM_ARRAY_TASK_ID")? {
        let first = number(var, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let tasks = number(var, "SLURM_ARRAY_TASK_COUNT")?;
        let n = match (tasks, count) {
            (Some(t), Some(c)) if t != c => {
                return Err(EvalError::Selection(format!(
                    "SLURM_ARRAY_TASK_COUNT is {t} but --shard-count is {c}: leave --shard-count out under Slurm"
                )))
            }
            (Some(t), _) => t,
            (None, Some(c)) => c,
            (None, None) => {
                return Err(EvalError::Selection(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give --shard-count".into(),
                ))
            }
        };
        let index = id.checked_sub(first).ok_or_else(|| {
            EvalError::Selection(format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {first}"))
        })?;
        return Ok((index, n));
    }
    if let Some(index) = number(var, "JOB_COMPLETION_INDEX")? {
        let n = count.ok_or_else(|| {
            EvalError::Selection(
                "JOB_COMPLETION_INDEX is set (a Kubernetes indexed job): give --shard-count, the job's completions"
                    .into(),
            )
        })?;
        return Ok((index, n));
    }
    Err(EvalError::Selection(
        "--shard auto reads SLURM_ARRAY_TASK_ID (a Slurm job array) or JOB_COMPLETION_INDEX (a Kubernetes indexed \
         job), and neither is set: run it from such a job, or give --shard I/N"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn auto(pairs: &[(&str, &str)], count: Option<usize>) -> Result<(usize, usize), String> {
        ShardSpec::Auto.resolve(&env(pairs), count).map_err(|e| e.to_string())
    }

    #[test]
    fn a_slurm_array_gives_its_task_over_its_count() {
        let slurm = [("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(auto(&slurm, None), Ok((2, 4)));
        // An array numbered 1..=4.
        let from_one = [("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")];
        assert_eq!(auto(&from_one, None), Ok((3, 4)));
        assert!(auto(&slurm, Some(5)).unwrap_err().contains("SLURM_ARRAY_TASK_COUNT is 4 but --shard-count is 5"));
        assert!(auto(&[("SLURM_ARRAY_TASK_ID", "x")], None).unwrap_err().contains("not a whole number"));
        assert!(auto(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "4")], None)
            .unwrap_err()
            .contains("below the count"));
    }

    #[test]
    fn a_kubernetes_indexed_job_needs_its_count() {
        assert_eq!(auto(&[("JOB_COMPLETION_INDEX", "0")], Some(3)), Ok((0, 3)));
        assert!(auto(&[("JOB_COMPLETION_INDEX", "0")], None).unwrap_err().contains("give --shard-count"));
        assert!(auto(&[("JOB_COMPLETION_INDEX", "3")], Some(3)).unwrap_err().contains("below the count"));
    }

    #[test]
    fn no_scheduler_is_refused_and_fixed_shards_parse() {
        assert!(auto(&[], Some(4)).unwrap_err().contains("neither is set"));
        assert_eq!("auto".parse::<ShardSpec>().unwrap(), ShardSpec::Auto);
        assert_eq!("1/3".parse::<ShardSpec>().unwrap(), ShardSpec::Fixed(1, 3));
        assert!("3/3".parse::<ShardSpec>().unwrap_err().to_string().contains("or auto"));
        assert_eq!(ShardSpec::Fixed(1, 3).resolve(&env(&[]), None).unwrap(), (1, 3));
        assert!(ShardSpec::Fixed(1, 3).resolve(&env(&[]), Some(4)).is_err());
    }
}
