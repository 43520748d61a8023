//! `tapeflow::nn`'s pooling, normalization, losses and dropout in the hostile generator:
//! images of random (also wrong) rank and dtype, empty ones with huge dimensions, window
//! sizes and strides of 0 and past the input, mismatched parameters, epsilons and rates
//! out of range (NaN included).

use tapeflow::nn::{self, Padding};

use super::*;

/// The ops these cases call; each must succeed and differentiate somewhere.
pub(crate) const OPS: [&str; 11] = [
    "max_pool2d",
    "avg_pool2d",
    "bias_add",
    "moments",
    "batch_normalization",
    "softmax_cross_entropy",
    "sigmoid_cross_entropy",
    "l2_loss",
    "l2_normalize",
    "dropout",
    "dropout_with",
];

const RATES: [f64; 7] = [0.0, 0.25, 0.5, 0.999, 1.0, -0.1, f64::NAN];
const EPSILONS: [f64; 5] = [1e-3, 0.0, 1e-12, -1.0, f64::NAN];

impl Hostile {
    /// Every op of this family once.
    pub(crate) fn nn_layers_cases(&mut self) {
        self.pool_case("max_pool2d");
        self.pool_case("avg_pool2d");
        self.bias_add_case();
        self.moments_case();
        self.batch_normalization_case();
        self.loss_case("softmax_cross_entropy");
        self.loss_case("sigmoid_cross_entropy");
        self.l2_case();
        self.dropout_case();
        self.generator_cases();
    }

    /// `f` on one random input (a tensor or a variable), differentiated.
    fn single(&mut self, op: &'static str, x: Tensor, what: String, f: impl FnOnce(&Input) -> Result<Tensor>) {
        let x = self.input(x);
        let describe = || format!("{op}({}, {what})", x.describe());
        let inputs = [x.clone()];
        self.differentiate(op, &inputs, &describe, || f(&x));
    }

    /// An NHWC image mostly (sizes 0–4, sometimes an empty one with a huge dimension),
    /// else any tensor.
    fn image(&mut self) -> Tensor {
        if self.rng.one_in(5) {
            return self.random_tensor();
        }
        let mut dims: Vec<usize> = (0..4).map(|_| self.rng.below(5)).collect();
        if self.rng.one_in(20) {
            let (i, j) = (self.rng.below(4), self.rng.below(4));
            dims[i] = self.rng.pick(&[usize::MAX, 1 << 62, (1 << 61) + 1]);
            dims[j] = 0;
        }
        let dtype = self.dtype();
        self.tensor(dtype, &dims)
    }

    /// A window size or stride: 1–3 mostly, else 0, past the input, or huge.
    fn window(&mut self) -> usize {
        match self.rng.below(10) {
            0 => 0,
            1 => self.rng.pick(&[7, 1 << 13, usize::MAX]),
            _ => 1 + self.rng.below(3),
        }
    }

    fn pool_case(&mut self, op: &'static str) {
        let x = self.image();
        let ksize = [self.window(), self.window()];
        let strides = [self.window(), self.window()];
        let padding = if self.rng.one_in(2) { Padding::Same } else { Padding::Valid };
        let max = op == "max_pool2d";
        self.single(op, x, format!("{ksize:?}, {strides:?}, {padding:?}"), |x| {
            if max { nn::max_pool2d(x, ksize, strides, padding) } else { nn::avg_pool2d(x, ksize, strides, padding) }
        });
    }

    /// A 1-D parameter for `x`'s last axis mostly, else a partner of any shape.
    fn channel_parameter(&mut self, x: &Tensor) -> Tensor {
        match (x.dims().last(), self.rng.below(3)) {
            (Some(&c), 0 | 1) if c <= 4096 => {
                let dtype = if self.rng.one_in(8) { self.dtype() } else { x.dtype() };
                self.tensor(dtype, &[c])
            }
            _ => self.partner(x),
        }
    }

    fn bias_add_case(&mut self) {
        let value = self.image();
        let bias = self.channel_parameter(&value);
        let inputs = [self.input(value), self.input(bias)];
        let describe = || format!("bias_add({}, {})", inputs[0].describe(), inputs[1].describe());
        self.differentiate("bias_add", &inputs, &describe, || nn::bias_add(&inputs[0], &inputs[1]));
    }

    fn moments_case(&mut self) {
        let x = self.image();
        let axes = self.axes(x.rank());
        let keepdims = self.rng.one_in(2);
        self.single("moments", x, format!("{axes:?}, {keepdims}"), |x| {
            let (mean, variance) = nn::moments(x, &axes, keepdims)?;
            mean.add(&variance)
        });
    }

    fn batch_normalization_case(&mut self) {
        let x = self.image();
        let (with_offset, with_scale) = (self.rng.one_in(2), self.rng.one_in(2));
        // Only the parameters passed are inputs (an absent one has no gradient to check).
        let count = 2 + usize::from(with_offset) + usize::from(with_scale);
        let params: Vec<Tensor> = (0..count).map(|_| self.channel_parameter(&x)).collect();
        let epsilon = self.rng.pick(&EPSILONS);
        let mut inputs = vec![self.input(x)];
        inputs.extend(params.into_iter().map(|p| self.input(p)));
        let describe = || {
            let parts: Vec<String> = inputs.iter().map(Input::describe).collect();
            format!("batch_normalization({}, offset {with_offset}, scale {with_scale}, {epsilon})", parts.join(", "))
        };
        self.differentiate("batch_normalization", &inputs, &describe, || {
            let offset: Option<&dyn nn::TensorArg> = if with_offset { Some(&inputs[3]) } else { None };
            let at = if with_offset { 4 } else { 3 };
            let scale: Option<&dyn nn::TensorArg> = if with_scale { Some(&inputs[at]) } else { None };
            nn::batch_normalization(&inputs[0], &inputs[1], &inputs[2], offset, scale, epsilon)
        });
    }

    fn loss_case(&mut self, op: &'static str) {
        let logits = self.random_tensor();
        let labels = self.partner(&logits);
        let inputs = [self.input(logits), self.input(labels)];
        let describe = || format!("{op}({}, {})", inputs[0].describe(), inputs[1].describe());
        let softmax = op == "softmax_cross_entropy";
        self.differentiate(op, &inputs, &describe, || {
            if softmax {
                nn::softmax_cross_entropy(&inputs[0], &inputs[1])
            } else {
                nn::sigmoid_cross_entropy(&inputs[0], &inputs[1])
            }
        });
    }

    fn l2_case(&mut self) {
        let x = self.random_tensor();
        self.single("l2_loss", x, String::new(), |x| nn::l2_loss(x));
        let x = self.random_tensor();
        let axis = self.axis(x.rank());
        self.single("l2_normalize", x, format!("{axis}"), |x| nn::l2_normalize(x, axis));
    }

    fn dropout_case(&mut self) {
        let x = self.random_tensor();
        let rate = self.rng.pick(&RATES);
        let seed = self.rng.next();
        self.single("dropout", x, format!("{rate}, {seed}"), |x| nn::dropout(x, rate, seed));
    }

    /// `tapeflow::random::Generator`'s draws and `dropout_with`: any shape (huge, empty) and
    /// dtype; a refused draw leaves the generator's state as it was.
    fn generator_cases(&mut self) {
        let seed = self.rng.next();
        let generator = tapeflow::random::Generator::from_seed(seed);
        let x = self.random_tensor();
        let rate = self.rng.pick(&RATES);
        self.single("dropout_with", x, format!("{rate}, generator {seed}"), |x| nn::dropout_with(x, rate, &generator));
        for op in ["uniform", "normal"] {
            let dims = self.dims();
            let dtype = self.dtype();
            let before = generator.state().unrecorded_value().to_vec::<i32>().unwrap_or_default();
            let describe = || format!("{op}({dims:?}, {dtype})");
            let drawn = self.call(op, &[], &describe, || match op {
                "uniform" => generator.uniform(dims.as_slice(), dtype),
                _ => generator.normal(dims.as_slice(), dtype),
            });
            let after = generator.state().unrecorded_value().to_vec::<i32>().unwrap_or_default();
            match drawn {
                Some(t) if t.dims() != dims.as_slice() || t.dtype() != dtype => {
                    self.fail(format!("{op}: wrong shape or dtype"), describe())
                }
                None if before != after => self.fail(format!("{op}: a refused draw moved the state"), describe()),
                _ => {}
            }
        }
    }
}

/// Pool windows and strides at the edge of `usize`: an `Err` naming the op (a window past
/// 2^24 taps, a VALID window larger than the image, a SAME window whose end overflows), or
/// a result whose gradient (the sum's) is computed, never a panic. Huge strides are valid:
/// one window per axis.
#[test]
fn overflowing_pool_geometry_is_an_err() {
    let huge = usize::MAX;
    let x = Variable::new(Tensor::from_vec((0..32).map(|i| (i % 7) as f32).collect::<Vec<_>>(), [2, 4, 4, 1]).unwrap());
    // Empty, with a height no window arithmetic can add to.
    let tall = Variable::new(Tensor::from_vec(Vec::<f32>::new(), [0, huge, 4, 1]).unwrap());
    let pool = |max: bool, x: &Variable, ksize, strides, padding| {
        let what = format!("{ksize:?}, {strides:?}, {padding:?}");
        let op = if max { "max_pool2d" } else { "avg_pool2d" };
        let run = || -> Result<Vec<Option<Tensor>>> {
            let tape = GradientTape::new();
            let y = tape.record(|| {
                let y = if max {
                    nn::max_pool2d(x, ksize, strides, padding)?
                } else {
                    nn::avg_pool2d(x, ksize, strides, padding)?
                };
                y.sum_all()
            })?;
            tape.gradients(&[&y], &[x])
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(grads)) => {
                let g = grads[0].as_ref().unwrap_or_else(|| panic!("{op}({what}): no gradient"));
                assert_eq!(g.shape(), x.value().shape(), "{op}({what})");
                true
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(msg.contains(op) && msg.contains("float32"), "{op}({what}): {msg}");
                false
            }
            Err(payload) => panic!("{op}({what}) panicked: {}", panic_text(payload)),
        }
    };
    for max in [true, false] {
        for padding in [Padding::Same, Padding::Valid] {
            for ksize in [[huge, 1], [1, huge], [huge, huge], [1 << 13, 1 << 12], [1 << 32, 1 << 32]] {
                assert!(!pool(max, &x, ksize, [1, 1], padding), "{ksize:?} {padding:?}");
            }
            // 2^24 taps, the most a window may have: it fits no 4 × 4 image VALID; SAME
            // clips it to the image.
            assert_eq!(pool(max, &x, [1 << 12, 1 << 12], [1, 1], padding), padding == Padding::Same);
            for strides in [[huge, 1], [1, huge], [huge, huge], [1 << 62, 3]] {
                assert!(pool(max, &x, [2, 2], strides, padding), "strides {strides:?} {padding:?}");
                assert!(pool(max, &x, [3, 3], strides, padding), "3 x 3, strides {strides:?} {padding:?}");
            }
            // SAME at stride 1 over a height of usize::MAX: the last window ends past it.
            assert_eq!(pool(max, &tall, [2, 2], [1, 1], padding), padding == Padding::Valid, "{padding:?}");
            assert!(pool(max, &tall, [2, 2], [huge, 2], padding), "{padding:?}");
        }
    }
}
