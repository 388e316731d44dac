-- The replication user cdc needs: binlog access and SELECT for snapshots.
CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY 'cdc';
GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%';
CREATE TABLE IF NOT EXISTS shop.orders (
  id INT PRIMARY KEY AUTO_INCREMENT,
  customer VARCHAR(40) NOT NULL,
  amount DECIMAL(10,2) NOT NULL,
  created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
);
INSERT INTO shop.orders (customer, amount) VALUES ('ada', 12.50), ('grace', 99.99);
