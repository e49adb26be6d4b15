package main
import (
 _ "gopkg.in/yaml.v3"
 _ "modernc.org/sqlite"
 _ "github.com/go-git/go-git/v5"
 _ "github.com/hashicorp/go-retryablehttp"
 _ "github.com/rabbitmq/amqp091-go"
 _ "github.com/jackc/pgx/v5"
)
func main(){}
