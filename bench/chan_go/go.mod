module chan_go

go 1.19
