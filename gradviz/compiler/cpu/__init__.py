"""The Numba CPU backend: kernel templates (`kernels`) and the compiled callable (`backend`)."""
