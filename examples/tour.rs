//! The seed tutorial end to end: TensorFlow's GradientTape introduction, snippet by
//! snippet, printing every result as TensorFlow 2.21 prints it.
//!
//! Run: `cargo run --release --example tour`

use std::io::Write;

use tapeflow::prelude::*;

/// TensorFlow prints a missing gradient as `None`.
fn show(gradient: Option<Tensor>) -> String {
    gradient.map_or_else(|| "None".to_string(), |g| g.to_string())
}

fn main() -> Result<()> {
    // TensorFlow's warnings come through `log`; print them the way TF's logger does.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            writeln!(buf, "{}:tapeflow:{}", record.level().as_str().replace("WARN", "WARNING"), record.args())
        })
        .init();

    println!("# 1. A variable");
    let x = Variable::new(20.0);
    println!("{x}");

    println!("\n# 2. The gradient of y = x**2 at x = 20");
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2.0))?;
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 3. An int32 variable: no gradient, two warnings");
    let x = Variable::new(30);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    println!("{y}");
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 4. The same value as float32");
    let x = Variable::with_dtype(30, DType::F32)?;
    println!("{x}");
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 5. A vector variable: the gradient is elementwise");
    let x = Variable::new([1.0, 2.0, 3.0]);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    println!("{y}");
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 6. A constant is not watched");
    let x = constant(3.0);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2))?;
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 7. ... unless the tape watches it");
    let tape = GradientTape::new();
    let y = tape.record(|| {
        tape.watch(&x);
        x.pow(2)
    })?;
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 8. A non-trainable variable, unwatched and watched");
    let x = Variable::builder(5.0).trainable(false).build()?;
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(3))?;
    println!("{}", show(tape.gradient(&y, &x)?));
    let tape = GradientTape::new();
    let y = tape.record(|| {
        tape.watch(&x);
        x.pow(3)
    })?;
    println!("{}", show(tape.gradient(&y, &x)?));

    println!("\n# 9. watch_accessed_variables=False");
    let x0 = Variable::new(5.0);
    let tape = GradientTape::new().watch_accessed_variables(false);
    let y = tape.record(|| x0.pow(2))?;
    println!("{}", show(tape.gradient(&y, &x0)?));
    let tape = GradientTape::new().watch_accessed_variables(false);
    let y = tape.record(|| {
        tape.watch(&x0);
        x0.pow(2)
    })?;
    println!("{}", show(tape.gradient(&y, &x0)?));

    println!("\n# 10. A non-persistent tape computes one set of gradients");
    let x = Variable::new(3.0);
    let tape = GradientTape::new();
    let y = tape.record(|| x.pow(2))?;
    println!("{}", show(tape.gradient(&y, &x)?));
    match tape.gradient(&y, &x) {
        Ok(g) => println!("unexpected second gradient: {}", show(g)),
        Err(e) => println!("Error: {e}"),
    }

    println!("\n# 11. A persistent tape computes several");
    let (x0, x1) = (Variable::new(5.0), Variable::new(10.0));
    let tape = GradientTape::new().persistent(true);
    let (y0, y1) = tape.record(|| Ok::<_, Error>((x0.pow(2)?, x1.pow(2)?)))?;
    println!("{}", show(tape.gradient(&y0, &x0)?));
    println!("{}", show(tape.gradient(&y1, &x1)?));

    println!("\n# 12. Nested tapes: a gradient of a gradient");
    let (x, z) = (Variable::new(2.0), Variable::new(3.0));
    let outer = GradientTape::new();
    let dy_dx = outer.record(|| {
        let inner = GradientTape::new();
        let y = inner.record(|| x.pow(2)? * z.pow(3)?)?; // y = x² z³
        inner.gradient(&y, &x).map(Option::unwrap) // dy/dx = 2x z³
    })?;
    println!("{}", show(outer.gradient(&dy_dx, &z)?)); // d²y/dxdz = 6x z² = 108
    Ok(())
}
