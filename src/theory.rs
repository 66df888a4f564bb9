//! Predicted convergence rates of GD, HB and NAG from the NTK spectrum.
