pub mod acquisition;
pub mod error;
pub mod fit;
pub mod gp;
pub mod kernel;
pub mod sobol;
pub mod space;
