//go:build !goexperiment.simd

package model

func sgdKernel(w, m, g []float32, lr, wd, beta float32) { sgdScalar(w, m, g, nil, lr, wd, beta, 0) }

func sgdProxKernel(w, m, g, anchor []float32, lr, wd, beta, mu float32) {
	sgdScalar(w, m, g, anchor, lr, wd, beta, mu)
}
