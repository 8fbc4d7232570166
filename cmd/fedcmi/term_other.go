//go:build !unix

package main

import "os"

// terminalWidth returns 0 (unknown) where the terminal cannot be asked;
// help texts then use $COLUMNS or 80 columns.
func terminalWidth(*os.File) int { return 0 }
