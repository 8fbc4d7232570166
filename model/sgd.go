package model

// sgdStep applies one SGD step with momentum to the parameter w in place,
// from its loss gradient g (with any term's in-graph corrections):
//
//	g' = g + wd*w                  weight decay
//	g' = g' + mu*(w - anchor)      the proximal term, when anchor is not nil
//	m  = beta*m + g'               momentum, in place
//	w  = w - lr*m
//
// Each operation is rounded to float32 on its own, in this order and with
// these operands, as the step graph's separate operations were before the
// update moved out of the graph: the results are the same bit for bit. One
// pass over the four slices replaces seven to nine whole-tensor
// operations, each of which allocated its result (about a quarter of an
// MLP step's time).
func sgdStep(w, m, g, anchor []float32, lr, wd, beta, mu float32) {
	if anchor == nil {
		sgdKernel(w, m, g, lr, wd, beta)
		return
	}
	sgdProxKernel(w, m, g, anchor, lr, wd, beta, mu)
}

// sgdScalar is sgdStep one element at a time (the vector kernels' tails
// and the reference of their test). The conversions keep every operation
// rounded on its own (no fused multiply-add).
func sgdScalar(w, m, g, anchor []float32, lr, wd, beta, mu float32) {
	for k := range w {
		gk := float32(g[k] + float32(wd*w[k]))
		if anchor != nil {
			gk = float32(gk + float32(mu*float32(w[k]-anchor[k])))
		}
		m[k] = float32(float32(beta*m[k]) + gk)
		w[k] = float32(w[k] - float32(lr*m[k]))
	}
}
