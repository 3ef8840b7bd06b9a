"""The Numba CUDA backend: kernel templates (`kernels`) and the compiled callable (`backend`)."""
