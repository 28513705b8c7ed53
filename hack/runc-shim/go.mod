module ai-gateway-py/hack/runc-shim

go 1.26
