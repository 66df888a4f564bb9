//! Readers for CIFAR-10 and IDX (MNIST, Fashion-MNIST), preprocessing and binary tasks.
