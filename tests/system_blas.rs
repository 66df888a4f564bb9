//! The system-BLAS backend (feature `system-blas`) against the pure-Rust
//! one: the same training trajectory to rounding, in weight and kernel
//! space, f64 and f32, and the backend switch itself. Its own test binary:
//! the backend is process-wide.

#![cfg(feature = "system-blas")]

use nalgebra::DMatrix;
use ntk_momentum::data::unit_sphere;
use ntk_momentum::train::Parameterization;
use ntk_momentum::{set_gemm_backend, Float, GemmBackend, Nesterov, Trainer, TwoLayerReLU};

fn losses<T: Float>(backend: GemmBackend, space: Parameterization) -> Vec<f64> {
    set_gemm_backend(backend).unwrap();
    // Sizes above the crate's small-product cut-offs, so the GEMMs run.
    let (x, y): (DMatrix<T>, _) = unit_sphere(300, 200, 3).unwrap();
    let model = TwoLayerReLU::<T>::init(200, 512, 4).unwrap();
    let mut trainer = Trainer::new(model, Nesterov::new(0.05, 0.9).unwrap())
        .parameterization(space)
        .max_steps(20)
        .diagnostics_every(0);
    let history = trainer.run(&x, &y).unwrap();
    set_gemm_backend(GemmBackend::Rust).unwrap();
    history.losses().to_vec()
}

#[test]
fn system_blas_follows_the_rust_trajectory() {
    for space in [Parameterization::Weight, Parameterization::Kernel] {
        for (rust, blas, tolerance) in [
            (
                losses::<f64>(GemmBackend::Rust, space),
                losses::<f64>(GemmBackend::SystemBlas, space),
                1e-12,
            ),
            (
                losses::<f32>(GemmBackend::Rust, space),
                losses::<f32>(GemmBackend::SystemBlas, space),
                1e-4,
            ),
        ] {
            assert!(rust[20] < 0.5 * rust[0], "the run must train: {rust:?}");
            for (t, (a, b)) in rust.iter().zip(&blas).enumerate() {
                assert!(
                    (a / b - 1.0).abs() <= tolerance,
                    "{space} step {t}: rust {a}, system BLAS {b}"
                );
            }
        }
    }
    assert_eq!(ntk_momentum::gemm_backend(), GemmBackend::Rust);
}
