package fileutil

import "io/fs"

func ownedByMe(fs.FileInfo) bool { return true }
