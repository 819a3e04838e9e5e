module kmsgate/go_oracle

go 1.19
