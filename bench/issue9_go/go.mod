module issue9_go

go 1.19
