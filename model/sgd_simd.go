//go:build goexperiment.simd

package model

import "simd"

// sgdKernel is sgdStep without the proximal term, a vector at a time.
func sgdKernel(w, m, g []float32, lr, wd, beta float32) {
	vLR, vWD, vBeta := simd.BroadcastFloat32s(lr), simd.BroadcastFloat32s(wd), simd.BroadcastFloat32s(beta)
	n := vLR.Len()
	k := 0
	for ; k+n <= len(w); k += n {
		vW := simd.LoadFloat32s(w[k:])
		vG := simd.LoadFloat32s(g[k:]).Add(vW.Mul(vWD))
		vM := simd.LoadFloat32s(m[k:]).Mul(vBeta).Add(vG)
		vM.Store(m[k:])
		vW.Sub(vM.Mul(vLR)).Store(w[k:])
	}
	sgdScalar(w[k:], m[k:], g[k:], nil, lr, wd, beta, 0)
}

// sgdProxKernel is sgdStep with the proximal term, a vector at a time.
func sgdProxKernel(w, m, g, anchor []float32, lr, wd, beta, mu float32) {
	vLR, vWD, vBeta, vMu := simd.BroadcastFloat32s(lr), simd.BroadcastFloat32s(wd), simd.BroadcastFloat32s(beta), simd.BroadcastFloat32s(mu)
	n := vLR.Len()
	k := 0
	for ; k+n <= len(w); k += n {
		vW := simd.LoadFloat32s(w[k:])
		vG := simd.LoadFloat32s(g[k:]).Add(vW.Mul(vWD))
		vG = vG.Add(vW.Sub(simd.LoadFloat32s(anchor[k:])).Mul(vMu))
		vM := simd.LoadFloat32s(m[k:]).Mul(vBeta).Add(vG)
		vM.Store(m[k:])
		vW.Sub(vM.Mul(vLR)).Store(w[k:])
	}
	sgdScalar(w[k:], m[k:], g[k:], anchor[k:], lr, wd, beta, mu)
}
