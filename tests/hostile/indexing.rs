//! Catalog II's shape, slicing, indexing and einsum ops in the hostile generator: random
//! and wrong axes, sizes, paddings, strides (0 included), equations, and int32 indices
//! in and out of range (i32::MIN and MAX included), some of them float.

use super::*;

/// The ops these cases call, each of which must succeed and differentiate somewhere (and
/// `one_hot`, whose int32 input takes no gradient).
pub(crate) const OPS: [&str; 15] = [
    "squeeze",
    "expand_dims",
    "stack",
    "unstack",
    "split",
    "tile",
    "pad",
    "reverse",
    "slice",
    "strided_slice",
    "gather",
    "gather_nd",
    "scatter_nd",
    "unsorted_segment_sum",
    "einsum",
];

impl Hostile {
    /// Every op of this family once.
    pub(crate) fn indexing_cases(&mut self) {
        self.squeeze_case();
        self.expand_dims_case();
        self.stack_case();
        self.unstack_case();
        self.split_case();
        self.tile_case();
        for mode in [PadMode::Constant(0.0), PadMode::Reflect, PadMode::Symmetric] {
            self.pad_case(mode);
        }
        self.reverse_case();
        self.slice_case();
        self.strided_slice_case();
        self.gather_case();
        self.gather_nd_case();
        self.scatter_nd_case();
        self.one_hot_case();
        self.segment_sum_case();
        self.einsum_case(1);
        self.einsum_case(2);
    }

    /// An index below `bound` mostly, else anything (negative, past the end, extreme).
    fn index(&mut self, bound: usize) -> i32 {
        match self.rng.below(8) {
            0 => self.rng.pick(&SPECIAL_I32),
            1 => self.rng.range(-3, bound as isize + 3) as i32,
            _ => self.rng.below(bound.max(1)) as i32,
        }
    }

    /// An int32 tensor of `dims` of indices below `bound` (mostly), sometimes a float one.
    fn indices(&mut self, dims: &[usize], bound: usize) -> Tensor {
        let n: usize = if dims.contains(&0) { 0 } else { dims.iter().product() };
        if self.rng.one_in(12) {
            return self.tensor(DType::F32, dims);
        }
        let values: Vec<i32> = (0..n).map(|_| self.index(bound)).collect();
        Tensor::from_vec(values, dims).expect("the generator fills the shape")
    }

    /// A small dimension list of rank up to 2 for index tensors.
    fn small_dims(&mut self) -> Vec<usize> {
        (0..self.rng.below(3)).map(|_| self.rng.below(4)).collect()
    }

    /// `f` on one random input, differentiated; `extra` names other operands for errors.
    fn one(
        &mut self,
        op: &'static str,
        x: Tensor,
        extra: &[Tensor],
        what: String,
        f: impl FnOnce(&Input) -> Result<Tensor>,
    ) {
        let x = self.input(x);
        let describe = || format!("{op}({}, {what})", x.describe());
        let inputs = [x.clone()];
        self.differentiate_with(op, &inputs, extra, &describe, || f(&x));
    }

    fn squeeze_case(&mut self) {
        let mut x = self.random_tensor();
        if self.rng.one_in(2) {
            // Size-1 axes to drop.
            let mut dims = x.dims().to_vec();
            dims.insert(self.rng.below(dims.len() + 1), 1);
            x = self.tensor(x.dtype(), &dims.iter().map(|&d| d.min(4)).collect::<Vec<_>>());
        }
        let axes = self.axes(x.rank());
        self.one("squeeze", x, &[], format!("{axes:?}"), |x| x.squeeze(&axes));
    }

    fn expand_dims_case(&mut self) {
        let x = self.random_tensor();
        let axis = self.rng.range(-5, 5);
        self.one("expand_dims", x, &[], format!("{axis}"), |x| x.expand_dims(axis));
    }

    fn stack_case(&mut self) {
        let first = self.random_tensor();
        let count = self.rng.below(4);
        let values: Vec<Input> = (0..count)
            .map(|_| {
                let t =
                    if self.rng.one_in(4) { self.partner(&first) } else { self.tensor(first.dtype(), first.dims()) };
                self.input(t)
            })
            .collect();
        let axis = self.rng.range(-5, 5);
        let describe = || {
            let parts: Vec<String> = values.iter().map(Input::describe).collect();
            format!("stack([{}], {axis})", parts.join(", "))
        };
        self.differentiate("stack", &values, &describe, || stack(&values, axis));
    }

    fn unstack_case(&mut self) {
        let x = self.random_tensor();
        let axis = self.axis(x.rank());
        // The pieces joined again (or, for no pieces, x unchanged), so there is one result.
        self.one("unstack", x, &[], format!("{axis}"), |x| {
            let parts = x.unstack(axis)?;
            if parts.is_empty() { x.expand_dims(0) } else { stack(&parts, axis) }
        });
    }

    fn split_case(&mut self) {
        let x = self.random_tensor();
        let axis = self.axis(x.rank());
        let len = x.shape().resolve_axis(axis).map_or(3, |a| x.dims()[a]);
        let sizes: Vec<usize> = match self.rng.below(4) {
            0 => vec![len],
            1 if len < 64 => {
                let cut = self.rng.below(len + 1);
                vec![cut, len - cut]
            }
            2 => vec![usize::MAX, 2],
            _ => (0..self.rng.below(4)).map(|_| self.rng.below(4)).collect(),
        };
        self.one("split", x, &[], format!("{sizes:?}, {axis}"), |x| {
            let parts = x.split(&sizes, axis)?;
            match parts.last() {
                Some(last) => Ok(last.clone()),
                None => x.expand_dims(0),
            }
        });
    }

    fn tile_case(&mut self) {
        let x = self.random_tensor();
        let rank = if self.rng.one_in(8) { self.rng.below(4) } else { x.rank() };
        let multiples: Vec<usize> =
            (0..rank).map(|_| if self.rng.one_in(20) { 1 << 62 } else { self.rng.below(4) }).collect();
        self.one("tile", x, &[], format!("{multiples:?}"), |x| x.tile(&multiples));
    }

    fn pad_case(&mut self, mode: PadMode) {
        let x = self.random_tensor();
        let rank = if self.rng.one_in(8) { self.rng.below(4) } else { x.rank() };
        let paddings: Vec<[usize; 2]> = (0..rank)
            .map(|_| if self.rng.one_in(25) { [usize::MAX, 1] } else { [self.rng.below(4), self.rng.below(4)] })
            .collect();
        let mode = match mode {
            PadMode::Constant(_) => PadMode::Constant(match self.literal() {
                Literal::Float(v) => v,
                Literal::Int(v) => f64::from(v),
            }),
            mirror => mirror,
        };
        self.one("pad", x, &[], format!("{paddings:?}, {mode:?}"), |x| x.pad(&paddings, mode));
    }

    fn reverse_case(&mut self) {
        let x = self.random_tensor();
        let axes = self.axes(x.rank());
        self.one("reverse", x, &[], format!("{axes:?}"), |x| x.reverse(&axes));
    }

    fn slice_case(&mut self) {
        let x = self.random_tensor();
        let rank = if self.rng.one_in(8) { self.rng.below(4) } else { x.rank() };
        let dim = |a: usize| x.dims().get(a).copied().unwrap_or(2).min(6);
        let begin: Vec<usize> = (0..rank).map(|a| self.rng.below(dim(a) + 2)).collect();
        let size: Vec<isize> = (0..rank).map(|a| self.rng.range(-2, dim(a) as isize + 1)).collect();
        self.one("slice", x, &[], format!("{begin:?}, {size:?}"), |x| x.slice(&begin, &size));
    }

    fn strided_slice_case(&mut self) {
        let x = self.random_tensor();
        let len = if self.rng.one_in(8) { self.rng.below(5) } else { self.rng.below(x.rank() + 1) };
        let mut bound =
            || if self.rng.one_in(20) { self.rng.pick(&[isize::MIN, isize::MAX]) } else { self.rng.range(-6, 6) };
        let begin: Vec<isize> = (0..len).map(|_| bound()).collect();
        let end: Vec<isize> = (0..len).map(|_| bound()).collect();
        let strides: Vec<isize> = (0..len + usize::from(self.rng.one_in(10))).map(|_| self.rng.range(-3, 3)).collect();
        self.one("strided_slice", x, &[], format!("{begin:?}, {end:?}, {strides:?}"), |x| {
            x.strided_slice(&begin, &end, &strides)
        });
    }

    fn gather_case(&mut self) {
        let x = self.random_tensor();
        let axis = self.axis(x.rank());
        let bound = x.shape().resolve_axis(axis).map_or(3, |a| x.dims()[a]);
        let dims = self.small_dims();
        let ids = self.indices(&dims, bound);
        let extra = [ids.clone()];
        self.one("gather", x, &extra, format!("{}, {axis}", ids.values_text()), |x| x.gather(&ids, axis));
    }

    fn gather_nd_case(&mut self) {
        let x = self.random_tensor();
        let q = self.rng.below(x.rank() + 2);
        let mut dims = self.small_dims();
        if !self.rng.one_in(10) {
            dims.push(q);
        }
        let bound = x.dims().iter().copied().max().unwrap_or(1);
        let ids = self.indices(&dims, bound);
        let extra = [ids.clone()];
        self.one("gather_nd", x, &extra, ids.values_text().to_string(), |x| x.gather_nd(&ids));
    }

    fn scatter_nd_case(&mut self) {
        let shape = self.dims();
        let q = self.rng.below(shape.len() + 2);
        let mut dims = self.small_dims();
        dims.push(q);
        let bound = shape.iter().copied().max().unwrap_or(1);
        let ids = self.indices(&dims, bound);
        // Updates of the expected shape mostly: ids.shape[:-1] + shape[q:].
        let udims: Vec<usize> = if self.rng.one_in(5) || q > shape.len() {
            self.dims()
        } else {
            dims[..dims.len() - 1].iter().chain(&shape[q..]).copied().collect()
        };
        let fits = udims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_some_and(|n| n <= 4096);
        let udims = if fits || udims.contains(&0) { udims } else { vec![2] };
        let dtype = self.dtype();
        let updates = self.tensor(dtype, &udims);
        let extra = [ids.clone()];
        let shape2 = shape.clone();
        self.one("scatter_nd", updates, &extra, format!("{}, {shape:?}", ids.values_text()), |u| {
            scatter_nd(&ids, u, shape2.as_slice())
        });
    }

    fn one_hot_case(&mut self) {
        let dims = self.small_dims();
        let depth = if self.rng.one_in(20) { 1 << 62 } else { self.rng.below(5) };
        let ids = self.indices(&dims, depth);
        let describe = || format!("one_hot({}, {depth})", ids.values_text());
        if let Some(y) = self.call("one_hot", &[&ids], &describe, || one_hot(&ids, depth)) {
            let mut want = ids.dims().to_vec();
            want.push(depth);
            if y.dims() != want.as_slice() || y.dtype() != DType::F32 {
                self.fail("one_hot: wrong shape or dtype".into(), describe());
            }
        }
    }

    fn segment_sum_case(&mut self) {
        let x = self.random_tensor();
        let segments = if self.rng.one_in(20) { usize::MAX } else { self.rng.below(4) };
        let prefix = self.rng.below(x.rank() + 1);
        let dims: Vec<usize> = if self.rng.one_in(6) { self.small_dims() } else { x.dims()[..prefix].to_vec() };
        let dims = if dims.iter().any(|&d| d > 4096) { vec![0] } else { dims };
        let ids = self.indices(&dims, segments.min(8));
        let extra = [ids.clone()];
        self.one("unsorted_segment_sum", x, &extra, format!("{}, {segments}", ids.values_text()), |x| {
            unsorted_segment_sum(x, &ids, segments)
        });
    }

    fn einsum_case(&mut self, operands: usize) {
        const ONE: [&str; 10] =
            ["ij->ji", "ij->", "ii->i", "ii", "i->", "ijk->kj", "...i->i", "i->ii", "ij->k", "iji->j"];
        const TWO: [&str; 10] = [
            "ij,jk->ik",
            "i,i->",
            "i,j->ij",
            "bij,bjk->bik",
            "ij,ij->ij",
            "ij,kj",
            "ii,i->i",
            "ij,jk",
            "ab,cd->",
            "i,i,i->",
        ];
        let equation = if operands == 1 { self.rng.pick(&ONE) } else { self.rng.pick(&TWO) };
        // Operands shaped for the equation (a label's size drawn once), or random ones.
        let mut sizes = [0usize; 128];
        for s in sizes.iter_mut() {
            *s = self.rng.below(4);
        }
        let lhs = equation.split("->").next().unwrap_or("");
        let operands: Vec<Input> = lhs
            .split(',')
            .map(|term| {
                let t = if self.rng.one_in(5) {
                    self.random_tensor()
                } else {
                    let dims: Vec<usize> =
                        term.bytes().filter(u8::is_ascii_alphabetic).map(|c| sizes[c as usize]).collect();
                    let dtype = if self.rng.one_in(8) { DType::I32 } else { DType::F32 };
                    self.tensor(dtype, &dims)
                };
                self.input(t)
            })
            .collect();
        let describe = || {
            let parts: Vec<String> = operands.iter().map(Input::describe).collect();
            format!("einsum({equation:?}, [{}])", parts.join(", "))
        };
        self.differentiate("einsum", &operands, &describe, || einsum(equation, &operands));
    }
}
