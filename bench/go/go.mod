module cmicrobench

go 1.19
