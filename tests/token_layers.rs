//! LSTM / GRU and the CRF against their references (`torch.nn.LSTM` / `GRU` on a packed
//! padded batch, pytorch-crf 0.7.2; fixtures by `reference/make_token_fixtures.py`): outputs,
//! final states, gradients, the four reductions, Viterbi paths, a brute-force enumeration of
//! every path for the partition function and the n-best paths; and padding never changing
//! an RNN's answer. Tolerance 1e-5 absolute (f32; only the summation order differs).

mod common;

use bert4rs::nn::{Crf, Params, Reduction, Rnn, RnnConfig, RnnMode};
use candle_core::{DType, Device, Tensor, Var};
use common::{assert_close, golden, json};
use std::collections::HashMap;
use std::path::Path;

/// The tensors of fixture `file` under `prefix.`, with the prefix removed.
fn case(file: &str, prefix: &str) -> HashMap<String, Tensor> {
    golden(file)
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&format!("{prefix}."))?.to_string(), v)))
        .collect()
}

fn params_of(t: &HashMap<String, Tensor>) -> Params {
    let weights = t
        .iter()
        .filter(|(k, _)| {
            k.starts_with("weight_") || k.starts_with("bias_") || k.ends_with("transitions")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Params::from_tensors(weights, Path::new("fixture"), &Device::Cpu, true)
}

fn mask_of(lengths: &[usize], t: usize) -> Tensor {
    let m: Vec<f32> = lengths
        .iter()
        .flat_map(|&l| (0..t).map(move |i| if i < l { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (lengths.len(), t), &Device::Cpu).unwrap()
}

fn rnn_case(name: &str) -> (Rnn, Params, HashMap<String, Tensor>, Vec<usize>) {
    let meta = &json("token/rnn.json")["cases"][name];
    let cfg = RnnConfig {
        mode: serde_json::from_value(meta["mode"].clone()).unwrap(),
        input_size: meta["input_size"].as_u64().unwrap() as usize,
        hidden_size: meta["hidden_size"].as_u64().unwrap() as usize,
        num_layers: meta["num_layers"].as_u64().unwrap() as usize,
        bidirectional: meta["bidirectional"].as_bool().unwrap(),
        dropout: 0.0,
    };
    let t = case("token/rnn.safetensors", name);
    let p = params_of(&t);
    let rnn = Rnn::load(&p, &cfg).unwrap();
    assert!(
        p.unused_keys().is_empty(),
        "{name}: unused {:?}",
        p.unused_keys()
    );
    let lengths: Vec<usize> = t["lengths"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect();
    (rnn, p, t, lengths)
}

#[test]
fn lstm_and_gru_match_torch_outputs_states_and_gradients() {
    for name in ["lstm", "gru", "lstm1"] {
        let (rnn, p, t, lengths) = rnn_case(name);
        let x = Var::from_tensor(&t["x"]).unwrap();
        let mask = mask_of(&lengths, x.dim(1).unwrap());
        let out = rnn.forward(x.as_tensor(), &mask, false).unwrap();
        assert_close(&out.output, &t["output"], 1e-5, &format!("{name} output"));
        assert_close(&out.h_n, &t["h_n"], 1e-5, &format!("{name} h_n"));
        match (&out.c_n, t.get("c_n")) {
            (Some(c), Some(want)) => assert_close(c, want, 1e-5, &format!("{name} c_n")),
            (None, None) => assert_eq!(rnn.config().mode, RnnMode::Gru),
            _ => panic!("{name}: c_n presence differs"),
        }
        let loss = ((&out.output * &t["r"]).unwrap().sum_all().unwrap()
            + (&out.h_n * &t["rh"]).unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let gx = grads.get(x.as_tensor()).unwrap();
        assert_close(gx, &t["grad.x"], 1e-5, &format!("{name} dx"));
        let mut checked = 0;
        for (pname, var) in p.vars() {
            let g = grads.get(var.as_tensor()).unwrap();
            assert_close(
                g,
                &t[&format!("grad.{pname}")],
                1e-5,
                &format!("{name} d{pname}"),
            );
            checked += 1;
        }
        let layers = if name == "lstm1" { 1 } else { 4 };
        assert_eq!(checked, layers * 4, "{name}: every parameter compared");
    }
}

/// Equal to rounding: candle's GEMM may sum a 1-row product in another order than a
/// 3-row one (2e-8 seen, on a row without padding), so 1e-6, not bit equality.
#[test]
fn rnn_rows_of_a_padded_batch_equal_each_sequence_alone() {
    for name in ["lstm", "gru"] {
        let (rnn, _, t, lengths) = rnn_case(name);
        let x = &t["x"];
        let mask = mask_of(&lengths, x.dim(1).unwrap());
        let batch = rnn.forward(x, &mask, false).unwrap();
        for (row, &len) in lengths.iter().enumerate() {
            let xi = x.narrow(0, row, 1).unwrap().narrow(1, 0, len).unwrap();
            let alone = rnn.forward(&xi, &mask_of(&[len], len), false).unwrap();
            let got = batch
                .output
                .narrow(0, row, 1)
                .unwrap()
                .narrow(1, 0, len)
                .unwrap();
            assert_close(
                &got,
                &alone.output,
                1e-6,
                &format!("{name} row {row} output"),
            );
            let h = batch.h_n.narrow(1, row, 1).unwrap();
            assert_close(&h, &alone.h_n, 1e-6, &format!("{name} row {row} h_n"));
        }
    }
}

/// The fused kernel reuses its buffers across calls (contents unspecified): a call after
/// larger and smaller ones, forward and backward, gives bit-identical answers.
#[test]
fn rnn_answers_do_not_depend_on_earlier_calls() {
    for name in ["lstm", "gru"] {
        let (rnn, p, t, lengths) = rnn_case(name);
        let x = Var::from_tensor(&t["x"]).unwrap();
        let mask = mask_of(&lengths, x.dim(1).unwrap());
        let run = || {
            let out = rnn.forward(x.as_tensor(), &mask, true).unwrap();
            let grads = out.output.sum_all().unwrap().backward().unwrap();
            let mut v = out.output.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v.extend(
                grads
                    .get(x.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            );
            for (_, var) in p.vars() {
                let g = grads.get(var.as_tensor()).unwrap();
                v.extend(g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            }
            v
        };
        let first = run();
        // Larger inputs fill the pool with other values (NaN where unwritten would show).
        let big = Var::from_tensor(
            &Tensor::full(f32::NAN, (7, 40, rnn.config().input_size), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let out = rnn
            .forward(
                big.as_tensor(),
                &mask_of(&[40, 3, 40, 1, 9, 40, 2], 40),
                true,
            )
            .unwrap();
        out.output.sum_all().unwrap().backward().unwrap();
        let small = t["x"].narrow(0, 0, 1).unwrap().narrow(1, 0, 1).unwrap();
        let _ = rnn.forward(&small, &mask_of(&[1], 1), false).unwrap();
        assert_eq!(first, run(), "{name}: answers changed after other calls");
    }
}

fn crf_case(name: &str) -> (Crf, Params, HashMap<String, Tensor>, Tensor, Vec<Vec<i64>>) {
    let t = case("token/crf.safetensors", name);
    let p = params_of(&t);
    let k = t["transitions"].dim(0).unwrap();
    let crf = Crf::load(&p, k).unwrap();
    let mask = t["mask"].to_dtype(DType::F32).unwrap();
    let tags = t["tags"].to_vec2::<i64>().unwrap();
    (crf, p, t, mask, tags)
}

#[test]
fn crf_log_likelihood_matches_pytorch_crf_in_every_reduction() {
    for name in ["crf", "crf2"] {
        let (crf, _, t, mask, tags) = crf_case(name);
        for (red, key) in [
            (Reduction::None, "llh.none"),
            (Reduction::Sum, "llh.sum"),
            (Reduction::Mean, "llh.mean"),
            (Reduction::TokenMean, "llh.token_mean"),
        ] {
            let llh = crf
                .log_likelihood(&t["emissions"], &tags, &mask, red)
                .unwrap();
            assert_close(&llh, &t[key], 1e-5, &format!("{name} {key}"));
        }
    }
}

#[test]
fn crf_gradients_match_pytorch_crf() {
    for name in ["crf", "crf2"] {
        let (crf, p, t, mask, tags) = crf_case(name);
        let e = Var::from_tensor(&t["emissions"]).unwrap();
        let llh = crf
            .log_likelihood(e.as_tensor(), &tags, &mask, Reduction::Sum)
            .unwrap();
        let grads = llh.backward().unwrap();
        assert_close(
            grads.get(e.as_tensor()).unwrap(),
            &t["grad.emissions"],
            1e-5,
            "d emissions",
        );
        for (pname, var) in p.vars() {
            let g = grads.get(var.as_tensor()).unwrap();
            assert_close(
                g,
                &t[&format!("grad.{pname}")],
                1e-5,
                &format!("{name} d{pname}"),
            );
        }
        assert_eq!(p.vars().len(), 3);
    }
}

#[test]
fn crf_viterbi_paths_match_pytorch_crf() {
    let want = json("token/crf.json");
    for (name, key) in [("crf", "viterbi"), ("crf2", "crf2_viterbi")] {
        let (crf, _, t, mask, _) = crf_case(name);
        let paths = crf.decode(&t["emissions"], &mask).unwrap();
        let want: Vec<Vec<usize>> = serde_json::from_value(want[key].clone()).unwrap();
        assert_eq!(paths, want, "{name}");
    }
}

/// pytorch-crf's own check: enumerate every path of a short sequence.
#[test]
fn crf_partition_and_nbest_equal_a_brute_force_over_every_path() {
    let brute = json("token/crf.json");
    for (name, key) in [("crf", "crf_brute"), ("crf2", "crf2_brute")] {
        let b = &brute[key];
        let (crf, _, t, mask, _) = crf_case(name);
        let z = crf.log_partition(&t["emissions"], &mask).unwrap();
        let want_z: Vec<f32> = serde_json::from_value(b["log_partition"].clone()).unwrap();
        let z = z.to_vec1::<f32>().unwrap();
        for (got, want) in z.iter().zip(&want_z) {
            assert!((got - want).abs() < 1e-5, "{name}: log Z {got} vs {want}");
        }
        let nbest = crf.decode_nbest(&t["emissions"], &mask, 3).unwrap();
        let paths: Vec<Vec<Vec<usize>>> = serde_json::from_value(b["top3_paths"].clone()).unwrap();
        let scores: Vec<Vec<f32>> = serde_json::from_value(b["top3_scores"].clone()).unwrap();
        for (row, got) in nbest.iter().enumerate() {
            // A one-token sequence over 5 tags has 5 paths, all listed; shorter lists are fine.
            let n = paths[row].len().min(3);
            assert_eq!(got.len(), n, "{name} row {row}");
            for (r, (path, score)) in got.iter().enumerate() {
                assert_eq!(path, &paths[row][r], "{name} row {row} rank {r}");
                assert!(
                    (score - scores[row][r]).abs() < 1e-5,
                    "{name} row {row} rank {r} score"
                );
            }
        }
    }
}

#[test]
fn crf_constraints_keep_decoding_to_allowed_moves() {
    let (crf, _, t, mask, _) = crf_case("crf");
    // Forbid tag 4 after anything but itself and tag 3 from starting: the decoded paths
    // change (the unconstrained ones use both) and obey the rule.
    let rule = |from: Option<usize>, to: Option<usize>| match (from, to) {
        (None, Some(3)) => false,
        (Some(f), Some(4)) => f == 4,
        (None, Some(4)) => true,
        _ => true,
    };
    let free = crf.decode(&t["emissions"], &mask).unwrap();
    let crf = crf
        .with_constraints(bert4rs::nn::Constraints::from_rule(5, rule))
        .unwrap();
    let held = crf.decode(&t["emissions"], &mask).unwrap();
    assert_ne!(free, held);
    for p in &held {
        assert_ne!(p[0], 3);
        for w in p.windows(2) {
            assert!(w[1] != 4 || w[0] == 4, "{p:?}");
        }
    }
}

/// TextCNN (window sizes 2, 3, 5 over 6-wide vectors, 4 filters each) = the reference's
/// masked convolution + ReLU + max over valid windows (reference/make_token_fixtures.py):
/// features and the gradients of the input and every weight ≤ 1e-5; padding (9.0 in the
/// input) is never read.
#[test]
fn textcnn_matches_the_torch_reference_and_ignores_padding() {
    let t = golden("token/textcnn.safetensors");
    let weights = t
        .iter()
        .filter(|(k, _)| k.starts_with("convs."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let p = Params::from_tensors(weights, Path::new("fixture"), &Device::Cpu, true);
    let cnn = bert4rs::nn::TextCnn::load(&p, 6, &[2, 3, 5], 4).unwrap();
    assert!(p.unused_keys().is_empty());
    let lengths: Vec<usize> = t["lengths"]
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let x = Var::from_tensor(&t["x"]).unwrap();
    let mask = mask_of(&lengths, 7);
    let out = cnn.forward(x.as_tensor(), &mask).unwrap();
    assert_close(&out, &t["output"], 1e-5, "features");
    let grads = (&out * &t["r"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close(grads.get(x.as_tensor()).unwrap(), &t["grad.x"], 1e-5, "dx");
    for (name, var) in p.vars() {
        let g = grads.get(var.as_tensor()).unwrap();
        assert_close(g, &t[&format!("grad.{name}")], 1e-5, &name);
    }
    // Shorter padding gives the same features: drop the padded tail of row 1.
    let row = x
        .as_tensor()
        .narrow(0, 1, 1)
        .unwrap()
        .narrow(1, 0, lengths[1])
        .unwrap();
    let alone = cnn
        .forward(&row, &mask_of(&[lengths[1]], lengths[1]))
        .unwrap();
    assert_close(&alone, &out.narrow(0, 1, 1).unwrap(), 1e-6, "row 1 alone");
}

/// The notes' attention over RNN outputs (`[task] rnn = "lstm"`, `pooling = "attention"`):
/// a 2-layer BiLSTM over a padded batch, then Linear → LayerNorm → GELU → Linear(1) scores,
/// a masked softmax and the weighted sum, against the same modules in torch.
#[test]
fn attention_pooling_over_a_bilstm_matches_torch() {
    use bert4rs::nn::{Pooler, Pooling};
    let meta = json("token/rnn_attention.json");
    let t = golden("token/rnn_attention.safetensors");
    let weights = t
        .iter()
        .filter(|(k, _)| k.starts_with("rnn.") || k.starts_with("pooling."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let p = Params::from_tensors(weights, Path::new("fixture"), &Device::Cpu, true);
    let cfg = RnnConfig {
        mode: RnnMode::Lstm,
        input_size: meta["input_size"].as_u64().unwrap() as usize,
        hidden_size: meta["hidden_size"].as_u64().unwrap() as usize,
        num_layers: 2,
        bidirectional: true,
        dropout: 0.0,
    };
    let rnn = Rnn::load(&p.pp("rnn"), &cfg).unwrap();
    let width = cfg.output_size();
    let pooler = Pooler::new(Pooling::Attention, &p.pp("pooling"), width, 0, 0.02).unwrap();
    assert!(p.unused_keys().is_empty(), "unused {:?}", p.unused_keys());
    let lengths: Vec<usize> = serde_json::from_value(meta["lengths"].clone()).unwrap();
    let x = Var::from_tensor(&t["x"]).unwrap();
    let mask = mask_of(&lengths, x.dim(1).unwrap());
    let h = rnn.forward(x.as_tensor(), &mask, false).unwrap().output;
    let pooled = pooler.forward(&[h], None, &mask).unwrap();
    assert_close(&pooled, &t["output"], 1e-5, "pooled");
    let grads = (&pooled * &t["r"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_close(grads.get(x.as_tensor()).unwrap(), &t["grad.x"], 1e-5, "dx");
    let vars = p.vars();
    assert_eq!(
        vars.len(),
        16 + 6,
        "every LSTM and pooling parameter compared"
    );
    for (name, var) in vars {
        let g = grads.get(var.as_tensor()).unwrap();
        assert_close(g, &t[&format!("grad.{name}")], 1e-5, &format!("d{name}"));
    }
}
